"""Voice conversion on the command line: 'oddkit fit SPEECH --detector voice' (through :func:`fit_voice`)
and 'oddkit convert MODEL SOURCE REFERENCE'."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from oddkit.cli._common import (Force, NThreads, _check_output, _load_model, _save_model, _thread_limit, app, console,
                                threads_limited)
from oddkit.exceptions import OddkitError


def _speaker_column(recordings) -> str | None:
    """Which column of the recordings' labels names the speakers: ``speaker`` (the FSDD archive) or
    ``group`` (the sub-folders of a folder) when it holds at least two speakers; None otherwise."""
    for column in ("speaker", "group"):
        if column in recordings.labels.columns and recordings.labels[column].nunique() >= 2:
            return column
    return None


def fit_voice(cls, params: dict, data: Path, out: Path, n_threads: int | None, force: bool,
              bandwidth: float | None = None) -> None:
    """'oddkit fit SPEECH --detector voice': train VoiceConversion on a folder of recordings (sub-folders
    = speakers), one file, or an FSDD-style .npz, and save it to OUT. BANDWIDTH (--audio-bandwidth):
    the spectrogram stops at that share of the model rate's Nyquist frequency."""
    from oddkit.data.audio import is_audio_source, read_audio

    if not is_audio_source(data):
        raise OddkitError(f"{data} holds no recordings; --detector voice trains on speech: a folder of WAV/FLAC "
                          "files (one sub-folder per speaker), one file, or an .npz of recordings")
    recordings = read_audio(data, sample_rate=params.get("sample_rate"))
    if bandwidth is not None and bandwidth < 1:
        params = {**params, "spectrogram": {**(params.get("spectrogram") or {}),
                                            "fmax": bandwidth * recordings.sample_rate / 2}}
    speakers = _speaker_column(recordings)
    model = cls(**params)
    started = time.perf_counter()
    with _thread_limit(n_threads):
        model.fit(recordings, speakers=speakers)
    _save_model(model, out, replace=force)
    who = (f"{recordings.labels[speakers].nunique()} speakers named by the {speakers} "
           f"{'sub-folders' if speakers == 'group' else 'labels'}" if speakers else
           "no speaker labels (put each speaker's files in a sub-folder to give them)")
    console.print(f"trained {cls.__name__} on {len(recordings):,} recordings at {model.sample_rate_} Hz, {who}, in "
                  f"{time.perf_counter() - started:.1f} s; saved to {out}")


@app.command()
@threads_limited
def convert(
    model: Annotated[Path, typer.Argument(help="A model folder written by 'oddkit fit SPEECH --detector voice'.")],
    source: Annotated[Path, typer.Argument(help="The recording whose words to keep (WAV or FLAC).")],
    reference: Annotated[Path, typer.Argument(help="A recording of the voice to give them (WAV or FLAC).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The WAV file to write.")] = Path("converted.wav"),
    force: Force = False,
    n_threads: NThreads = None,
):
    """Say what SOURCE says in the voice of REFERENCE (voice conversion) and write it to --out as WAV.

    Recordings at another sample rate than the model's are resampled; the output has the model's rate.
    """
    if out.suffix.lower() != ".wav":
        raise OddkitError(f"cannot write audio to {out}: use a file name ending in .wav")
    _check_output(out, force, table=False)
    from oddkit.data.audio import write_wav
    from oddkit.detectors.voice import VoiceConversion

    detector = _load_model(model)
    if not isinstance(detector, VoiceConversion):
        raise OddkitError(f"{model} holds a {type(detector).__name__}, which cannot convert voices; train one with "
                          "'oddkit fit SPEECH --detector voice'")
    for path in (source, reference):
        if not path.is_file():
            raise OddkitError(f"{path} is not a file; pass one WAV or FLAC recording")
    wave = detector.convert(source, reference)
    write_wav(out, wave, detector.sample_rate_)
    console.print(f"converted {source} ({len(wave) / detector.sample_rate_:.2f} s) to the voice of {reference}; "
                  f"wrote {out}")
