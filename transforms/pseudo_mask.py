"""Placeholder: being written."""


def VesselPseudoMask(*args, **kwargs):
    raise NotImplementedError


def VesselPseudoMaskd(*args, **kwargs):
    raise NotImplementedError
