"""The scoreboard tab: the three ways side by side, the learner's runs, compare. It reads every
other tab's figures through the registry (modes/tabs.py) and names none of them.
"""
