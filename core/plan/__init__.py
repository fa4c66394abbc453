"""core.plan"""
