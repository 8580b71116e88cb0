"""Placeholder: being written."""


def AnatomyGuidedMask(*args, **kwargs):
    raise NotImplementedError


def AnatomyGuidedMaskd(*args, **kwargs):
    raise NotImplementedError


def SharedBeta(*args, **kwargs):
    raise NotImplementedError
