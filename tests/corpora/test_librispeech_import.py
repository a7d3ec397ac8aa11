"""LibriSpeech-shaped trees and Kaldi/lhotse dirs with real TTS audio go through `jstip prepare`."""

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import CutSet

UTTS = {
    "1089-134686-0000": "HE HOPED THERE WOULD BE STEW FOR DINNER",
    "1089-134686-0001": "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",
    "1089-134687-0000": "THE YOUNG MAN SAT DOWN",
}


def jstip(*args):
    exe = Path(sys.executable).with_name("jstip")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def librispeech_tree(make_librispeech_tree):
    """dev-clean/<spk>/<chapter>/<utt>.flac + <spk>-<chapter>.trans.txt, spoken by espeak-ng."""
    return make_librispeech_tree({"dev-clean": UTTS})


def test_prepare_librispeech_keeps_text_as_is(librispeech_tree, tmp_path):
    out = tmp_path / "ls"
    r = jstip("prepare", "librispeech", "--corpus-dir", str(librispeech_tree), "--out", str(out))
    assert "dev-clean: 3 cuts" in r.stdout
    cuts = CutSet.from_file(out / "dev-clean" / "cuts.jsonl.gz")
    assert {c.supervisions[0].text for c in cuts} == set(UTTS.values())
    assert all(c.duration > 0.5 for c in cuts)
    assert cuts[0].load_audio().shape[0] == 1


def test_prepare_librispeech_names_a_missing_part_and_where_to_get_it(librispeech_tree, tmp_path):
    exe = Path(sys.executable).with_name("jstip")
    r = subprocess.run([str(exe), "prepare", "librispeech", "--corpus-dir", str(librispeech_tree), "--out",
                        str(tmp_path / "ls"), "--part", "dev-clean", "--part", "test-other"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "part 'test-other' not found" in r.stderr and "(present: dev-clean)" in r.stderr
    assert "openslr.org/resources/12/test-other.tar.gz" in r.stderr


def test_import_kaldi_dir_rejects_empty_transcripts(librispeech_tree, tmp_path):
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    flacs = sorted(librispeech_tree.rglob("*.flac"))
    wavs = []
    for f in flacs:
        audio, sr = sf.read(f)
        w = tmp_path / (f.stem + ".wav")
        sf.write(w, audio, sr)
        wavs.append(w)
    (kaldi / "wav.scp").write_text("".join(f"{w.stem} {w}\n" for w in wavs))
    texts = list(UTTS.values())
    texts[1] = ""
    (kaldi / "text").write_text("".join(f"{w.stem} {t}\n" for w, t in zip(wavs, texts)))
    (kaldi / "utt2spk").write_text("".join(f"{w.stem} {w.stem.split('-')[0]}\n" for w in wavs))
    out = tmp_path / "imported"
    jstip("prepare", "import", "--kaldi-dir", str(kaldi), "--out", str(out))
    cuts = CutSet.from_file(out / "cuts.jsonl.gz")
    rejected = (out / "rejected.jsonl").read_text() if (out / "rejected.jsonl").exists() else ""
    assert len(cuts) + len(rejected.splitlines()) == 3
    assert len(cuts) == 2


def test_import_lhotse_dir(tts_cuts_dir, tmp_path):
    out = tmp_path / "imported"
    jstip("prepare", "import", "--lhotse-dir", str(tts_cuts_dir), "--out", str(out))
    assert len(CutSet.from_file(out / "cuts.jsonl.gz")) == len(CutSet.from_file(tts_cuts_dir / "cuts.jsonl.gz"))


def test_import_of_a_folder_without_manifests_names_the_fix(tmp_path):
    exe = Path(sys.executable).with_name("jstip")
    r = subprocess.run([str(exe), "prepare", "import", "--lhotse-dir", str(tmp_path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no lhotse manifests" in r.stderr
