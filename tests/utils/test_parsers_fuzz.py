"""Parsers of user files under fuzzing and a corpus of hostile inputs (``tests/corpus``).

Each input ends in a result that satisfies the parser's contract, or in our own error that names the file; never
another exception, a hang or code execution.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.data.config import load_data_config
from utils.data.labels import parse_label_file
from utils.voc import VocFormatError, parse_voc_xml, voc_box_to_yolo

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check_labels(path: Path, nc: int) -> None:
    """Parse a label file; every kept row must be a valid box."""
    try:
        labels, problems = parse_label_file(str(path), nc)
    except (OSError, UnicodeDecodeError):  # reported by check_image as an unreadable label file
        return
    assert labels.dtype.name == "float32" and labels.shape[1:] == (5,)
    for cls, cx, cy, w, h in labels.tolist():
        assert cls.is_integer() and 0 <= cls < nc
        assert 0 < w <= 1 and 0 < h <= 1 and cx - w / 2 + 1e-6 >= 0 and cx + w / 2 <= 1 + 1e-6
        assert cy - h / 2 + 1e-6 >= 0 and cy + h / 2 <= 1 + 1e-6
    assert all(isinstance(n, int) and n >= 1 and reason for n, reason in problems)


def check_data_yaml(path: Path) -> None:
    try:
        cfg = load_data_config(path)
    except ValueError as e:
        assert str(path.resolve()) in str(e) or str(path) in str(e), e
        assert len(str(e)) < 2000, "the message must stay one readable line"
        return
    assert cfg.nc == len(cfg.names) >= 1 and all(isinstance(n, str) for n in cfg.names)
    assert cfg.train and cfg.val and all(p.is_absolute() for p in cfg.train + cfg.val)


def check_voc(path: Path) -> None:
    try:
        ann = parse_voc_xml(path)
    except VocFormatError as e:
        assert str(path) in str(e)
        return
    for obj in ann.objects:
        assert obj.name and all(math.isfinite(v) for v in obj.box)
        w, h = ann.size or (640, 480)
        box = voc_box_to_yolo(obj.box, w, h)
        assert box.xywhn is None or all(0 <= v <= 1 for v in box.xywhn), box


@pytest.mark.parametrize("path", sorted((CORPUS / "labels").iterdir()), ids=lambda p: p.name)
def test_label_corpus(path):
    check_labels(path, nc=3)


def test_label_corpus_keeps_the_good_rows():
    labels, problems = parse_label_file(str(CORPUS / "labels" / "mixed_bad_rows.txt"), 3)
    assert np.allclose(labels, [[0, 0.5, 0.5, 0.2, 0.2], [1, 0.5, 0.5, 0.8, 0.8]])
    assert len(problems) == 13


@pytest.mark.parametrize("path", sorted((CORPUS / "yaml").iterdir()), ids=lambda p: p.name)
def test_data_yaml_corpus(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=str(path.name)):
        load_data_config(path)
    assert not (tmp_path / "owned.txt").exists()


@pytest.mark.parametrize("path", sorted((CORPUS / "voc").iterdir()), ids=lambda p: p.name)
def test_voc_corpus(path):
    check_voc(path)


def test_voc_corpus_refuses_entities_and_skips_bad_objects():
    for name in ("billion_laughs.xml", "external_entity.xml", "not_voc.xml", "truncated.xml"):
        with pytest.raises(VocFormatError, match=name):
            parse_voc_xml(CORPUS / "voc" / name)
    assert parse_voc_xml(CORPUS / "voc" / "external_dtd.xml").filename == "a.jpg"  # the DTD is never fetched
    wrong = parse_voc_xml(CORPUS / "voc" / "wrong_types.xml")
    assert wrong.objects == [] and wrong.skipped_objects == 3 and wrong.size is None
    huge = parse_voc_xml(CORPUS / "voc" / "huge_numbers.xml")
    assert huge.objects == [] and huge.skipped_objects == 2


# ------------------------------------------------------------------------------------------ property-based
NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-0.1, 1.1).map(lambda v: f"{v:.6f}"),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["nan", "-inf", "1e400", "0x10", "1_000", "", "٣", "1.5.2", "--1", "0"]),
)
LINE = st.one_of(
    st.lists(NUMBER, min_size=0, max_size=11).map(" ".join),
    st.text(max_size=60),
)


@FUZZ
@given(lines=st.lists(LINE, max_size=12), nc=st.integers(1, 5))
def test_label_lines_fuzz(tmp_path, lines, nc):
    path = tmp_path / "fuzz.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    check_labels(path, nc)


SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=12),
    st.sampled_from(["images", "train.txt", "*.jpg", "~/x", "../../etc", ""]),
)  # fmt: skip
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SCALAR, inner, max_size=4),
                     max_leaves=12)  # fmt: skip
KEYS = st.sampled_from(["path", "train", "val", "test", "nc", "names", "download", "other"])


@FUZZ
@given(doc=st.dictionaries(KEYS, VALUE, max_size=7) | VALUE)
def test_data_yaml_fuzz(tmp_path, doc):
    path = tmp_path / "data.yaml"
    try:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    except (yaml.YAMLError, UnicodeEncodeError):  # not representable as yaml text
        return
    check_data_yaml(path)


@FUZZ
@given(text=st.text(max_size=200))
def test_data_yaml_text_fuzz(tmp_path, text):
    path = tmp_path / "data.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_data_yaml(path)


XML_TEXT = st.one_of(NUMBER, st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=10))


@st.composite
def voc_documents(draw) -> str:
    def el(tag: str, value: str | None) -> str:
        if value is None:
            return ""
        return f"<{tag}>{value.replace('&', '&amp;').replace('<', '&lt;')}</{tag}>"

    objects = []
    for _ in range(draw(st.integers(0, 4))):
        box = "".join(el(t, draw(st.none() | XML_TEXT)) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(
            "<object>" + el("name", draw(st.none() | XML_TEXT)) + el("difficult", draw(st.none() | XML_TEXT))
            + (f"<bndbox>{box}</bndbox>" if draw(st.booleans()) else "") + "</object>"
        )  # fmt: skip
    size = "<size>" + el("width", draw(XML_TEXT)) + el("height", draw(XML_TEXT)) + "</size>"
    root = draw(st.sampled_from(["annotation", "annotation", "annotations", "x"]))
    prefix = draw(st.sampled_from(["", '<?xml version="1.0"?>', '<!DOCTYPE a [<!ENTITY e "x">]>']))
    return f"{prefix}<{root}>{el('filename', draw(XML_TEXT))}{size}{''.join(objects)}</{root}>"


@FUZZ
@given(doc=voc_documents(), cut=st.integers(0, 400))
def test_voc_xml_fuzz(tmp_path, doc, cut):
    path = tmp_path / "a.xml"
    path.write_text(doc if cut == 0 else doc[:cut], encoding="utf-8", errors="surrogatepass")
    check_voc(path)
