"""A stand-in for PyAV on the GPU machine, whose image lacks it and onto which nothing can be fetched: training from
in-memory synthetic clips never opens a video file, but ``m3ddm.io`` imports ``av`` at import time. Any real use
fails with a clear message. Never on the path anywhere else (scripts/device/gpu_train_v5.sh puts it there)."""


class _Missing:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> "_Missing":
        return _Missing(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"PyAV is not installed on this machine ({self._name} was called)")


def __getattr__(name: str) -> _Missing:
    return _Missing(f"av.{name}")
