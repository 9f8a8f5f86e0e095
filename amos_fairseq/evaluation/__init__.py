"""Evaluations of pretrained models that need no training (zero-shot BLiMP: ``blimp.py``).

Not imported by ``--user-dir amos_fairseq``: nothing here registers with fairseq.
"""
