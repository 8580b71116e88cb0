"""Placeholder: being written."""


def LoadAngiogram(*args, **kwargs):
    raise NotImplementedError


def LoadAngiogramd(*args, **kwargs):
    raise NotImplementedError


def list_angiogram_frames(*args, **kwargs):
    raise NotImplementedError
