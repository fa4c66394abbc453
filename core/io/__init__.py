"""core.io"""
