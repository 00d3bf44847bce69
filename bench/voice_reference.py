"""Reference numbers for the numpy voice encoder, computed by resemblyzer itself on PyTorch.

Not part of CI (it needs torch and librosa, which the project does not depend on). Run it in a throwaway
virtual environment, never the project's::

    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 librosa
    /tmp/ref/bin/pip install --no-deps resemblyzer==0.1.4
    /tmp/ref/bin/python bench/voice_reference.py > ref.json

It embeds :func:`tests._voice.reference_signal` with resemblyzer's own ``VoiceEncoder.embed_utterance``
(librosa's mel spectrogram, torch's LSTM; webrtcvad is stubbed out, it is only used for trimming, which
this skips), once with librosa's current centre padding ("constant") and once with the "reflect" padding
librosa had when the model was trained (what :mod:`aigclabel.likeness._ge2e` does). It also prints
torch's partial embeddings for the numpy mel frames, which isolates the LSTM from the mel front end.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.modules.setdefault("webrtcvad", types.ModuleType("webrtcvad"))  # imported by resemblyzer.audio, unused here


def main() -> None:
    import librosa
    import torch
    from resemblyzer import VoiceEncoder, audio

    from tests._voice import reference_signal

    encoder = VoiceEncoder("cpu", verbose=False)
    wav = reference_signal()
    out: dict[str, object] = {"torch": torch.__version__, "librosa": librosa.__version__}
    original = audio.wav_to_mel_spectrogram
    for pad in ("constant", "reflect"):

        def mel(y: np.ndarray, pad_mode: str = pad) -> np.ndarray:
            frames = librosa.feature.melspectrogram(
                y=y, sr=16000, n_fft=400, hop_length=160, n_mels=40, pad_mode=pad_mode
            )
            return frames.astype(np.float32).T

        audio.wav_to_mel_spectrogram = mel
        embed, partials, _ = encoder.embed_utterance(wav, return_partials=True)
        out[f"embedding_{pad}"] = [float(x) for x in embed]
        out[f"partials_{pad}"] = [[float(x) for x in p] for p in partials]
    audio.wav_to_mel_spectrogram = original
    print(json.dumps(out))


if __name__ == "__main__":
    main()
