"""A minimal ctypes binding to libespeak-ng, as bundled by the PyPI package ``espeakng-loader``.

The package ships the shared library and its voice data but no synthesis API, so we call the C API
(``speak_lib.h``) directly in synchronous mode: a callback collects the 16-bit samples. The library keeps
global state and is not thread-safe: use one :class:`EspeakSynthesizer` per process (a process pool for
parallel work).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
# espeak-ng copies the data path into a 160-byte buffer after appending "/espeak-ng-data"
_MAX_DATA_PATH = 140

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """The espeak-ng library could not be loaded, initialised or asked to speak."""


def _short_data_path(path: str) -> str:
    """A symlink under the temp dir when the data path is too long for espeak-ng's fixed buffer."""
    if len(path) < _MAX_DATA_PATH:
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    link = Path(tempfile.gettempdir()) / f"espeak-ng-data-{digest}"
    if not link.exists():
        try:
            link.symlink_to(path, target_is_directory=True)
        except FileExistsError:  # another worker made it first
            pass
    if len(str(link)) >= _MAX_DATA_PATH:
        raise EspeakError(f"espeak-ng data path {path} is too long and the temp dir {link.parent} is too")
    return str(link)


class EspeakSynthesizer:
    """Speaks text into int16 samples at :attr:`sample_rate` (22,050 Hz for the bundled voices)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise EspeakError("the espeakng-loader package is required (pip install espeakng-loader)") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = _short_data_path(os.fspath(espeakng_loader.get_data_path()))
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data path {data_path})")
        self.sample_rate: int = int(rate)
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # initialisation seeds its generator from the clock
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed(0)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # continue synthesis

    def synthesize(self, text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50) -> np.ndarray:
        """``(L,)`` int16 samples of ``text`` spoken by ``voice`` (``name`` or ``name+variant``).

        ``rate`` in words per minute (80-450), ``pitch`` and ``pitch_range`` in 0-100.
        """
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
                             (_PARAM_VOLUME, 100)):
            lib.espeak_SetParameter(param, int(value), 0)
        data = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(data, len(data))
        self._chunks = []
        err = lib.espeak_Synth(buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed with error {err} for {text!r}")
        lib.espeak_Synchronize()
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16, copy=False)
