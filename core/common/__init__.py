"""core.common"""
