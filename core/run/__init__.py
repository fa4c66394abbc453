"""core.run"""
