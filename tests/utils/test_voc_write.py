"""The VOC XML writer: what it writes is valid VOC that our parser reads back to the same boxes."""

from __future__ import annotations

import defusedxml.ElementTree as DefusedET
import pytest

from utils.voc import VocBox, parse_voc_xml, voc_box_to_yolo, voc_pixel_box, write_voc_xml


def test_written_xml_reads_back_to_the_same_boxes(tmp_path):
    objects = [
        VocBox("RBC", (10.4, 20.6, 50.2, 80.0)),
        VocBox("WBC", (0.0, 0.0, 99.7, 30.2), difficult=True, truncated=True),
        VocBox("Platelets", (60.0, 5.0, 61.9, 9.0)),
    ]
    xml = tmp_path / "ann" / "img.xml"
    assert write_voc_xml(xml, tmp_path / "img.jpg", (120, 100, 3), objects) == 3
    ann = parse_voc_xml(xml)
    assert ann.filename == "img.jpg" and ann.size == (100, 120) and not ann.problems
    assert [o.name for o in ann.objects] == ["RBC", "WBC", "Platelets"]
    assert [o.box for o in ann.objects] == [(11, 22, 51, 81), (1, 1, 100, 31), (61, 6, 63, 10)]
    assert [o.difficult for o in ann.objects] == [False, True, False]
    # the converter's reading of the written box is the detection rounded to pixels
    xywhn = voc_box_to_yolo(ann.objects[0].box, 100, 120).xywhn
    assert xywhn == pytest.approx(((10 + 50) / 2 / 100, (21 + 80) / 2 / 120, 40 / 100, 59 / 120))


def test_xml_has_every_voc_field(tmp_path):
    xml = tmp_path / "a.xml"
    write_voc_xml(xml, tmp_path / "imgs" / "a.png", (40, 30, 1), [VocBox("cat", (1.0, 2.0, 10.0, 12.0))])
    root = DefusedET.parse(xml).getroot()
    assert root.findtext("folder") == "imgs" and root.findtext("filename") == "a.png"
    assert root.findtext("path") == str((tmp_path / "imgs" / "a.png").resolve())
    assert [root.findtext(f"size/{t}") for t in ("width", "height", "depth")] == ["30", "40", "1"]
    obj = root.find("object")
    assert [obj.findtext(t) for t in ("name", "pose", "truncated", "difficult")] == ["cat", "Unspecified", "0", "0"]
    assert [obj.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")] == ["2", "3", "11", "13"]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((-5.0, -3.0, 20.0, 10.0), (1, 1, 21, 11)),  # clipped at the top-left
        ((90.0, 50.0, 130.0, 70.0), (91, 51, 100, 60)),  # clipped to 100 x 60 at the bottom-right
        ((10.0, 10.0, 10.3, 20.0), None),  # no width left after rounding
        ((120.0, 10.0, 150.0, 20.0), None),  # outside the image
    ],
)
def test_pixel_boxes_are_integers_clipped_to_the_image(box, expected):
    assert voc_pixel_box(box, 100, 60) == expected


def test_boxes_without_area_are_left_out_and_an_empty_annotation_is_valid(tmp_path):
    xml = tmp_path / "e.xml"
    assert write_voc_xml(xml, tmp_path / "e.jpg", (60, 100, 3), [VocBox("a", (10.0, 10.0, 10.2, 30.0))]) == 0
    ann = parse_voc_xml(xml)
    assert ann.objects == [] and ann.size == (100, 60)
