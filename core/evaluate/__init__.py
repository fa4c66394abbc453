"""Evaluate: a small bundled task set run over prompt techniques and model variants, scored with kept libraries
(ROUGE via Google's ``rouge-score``; accuracy), so "which setup is best on this task" is a table, not an opinion.

- ``tasks``: the bundled tasks (CC0, written for LLM Lab) and the solved examples their prompts use;
- ``metrics``: ROUGE-1/2/L F1, the label a completion gives, exact match;
- ``runner``: every setup over every item, with progress and Stop; the summary and its verdict;
- ``report``: tables, CSV/JSON; ``charts``: the summary as bars.
"""
