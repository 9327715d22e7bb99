"""The adversarial safety corpus: forbidden and harmless request material (issue 19)."""
