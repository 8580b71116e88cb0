"""Placeholder: being written."""


def FrangiVesselness(*args, **kwargs):
    raise NotImplementedError


def FrangiVesselnessd(*args, **kwargs):
    raise NotImplementedError


def frangi(*args, **kwargs):
    raise NotImplementedError


def sato(*args, **kwargs):
    raise NotImplementedError
