"""check_lens_laws: a lawful lens passes, a broken one fails with a message that shows the counterexample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from atdata_core.errors import LensError, LensLawViolation
from atdata_core import lens
from atdata_core.lenses import check_lens_laws, first_difference, values_equal
from atdata_core.sample import DictSample, packable


@packable
class Photo:
    pixels: np.ndarray
    caption: str
    scale: float = 1.0


@packable
class Caption:
    text: str


@lens(register=False)
def caption_of(p: Photo) -> Caption:
    return Caption(p.caption)


@caption_of.putter
def caption_put(c: Caption, p: Photo) -> Photo:
    return Photo(pixels=p.pixels, caption=c.text, scale=p.scale)


@packable
class Thumb:
    pixels: np.ndarray


def _photos() -> list[Photo]:
    rng = np.random.default_rng(0)
    return [Photo(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), f"photo {i}", float(i)) for i in range(4)]


def test_a_lawful_lens_passes_and_reports_what_was_checked():
    report = check_lens_laws(caption_of, _photos())
    assert (report.samples, report.get_put, report.put_get) == (4, 4, 4)
    assert "caption_of obeys GetPut on 4 sample(s)" in str(report)


def test_given_views_are_put_into_every_sample():
    report = check_lens_laws(caption_of, _photos()[:2], views=[Caption("a"), Caption("b"), Caption("c")])
    assert report.put_get == 6


def test_getput_violation_names_the_law_the_sample_and_the_difference():
    @lens(register=False)
    def thumb(p: Photo) -> Thumb:
        return Thumb(p.pixels[::2, ::2])

    @thumb.putter
    def thumb_put(t: Thumb, p: Photo) -> Photo:
        # forgets the caption: put(get(s), s) != s
        return Photo(pixels=p.pixels, caption="", scale=p.scale)

    photos = _photos()
    with pytest.raises(LensLawViolation) as caught:
        check_lens_laws(thumb, photos)
    err = caught.value
    message = str(err)
    assert err.law == "GetPut" and err.index == 0
    assert "lens thumb breaks GetPut on sample #0: put(get(s), s) == s does not hold" in message
    assert ".caption: '' != 'photo 0' (got, expected)" in message
    assert "pixels=ndarray(uint8, shape=(4, 4, 3))" in message  # the sample, compactly
    assert err.sample is photos[0]


def test_putget_violation_is_caught_with_the_view_that_broke_it():
    @lens(register=False)
    def caption_upper(p: Photo) -> Caption:
        return Caption(p.caption.upper())

    @caption_upper.putter
    def caption_upper_put(c: Caption, p: Photo) -> Photo:
        # stores the view as given, so reading it back upper-cases it
        return Photo(pixels=p.pixels, caption=c.text, scale=p.scale)

    upper_photos = [Photo(np.zeros((1,), np.uint8), "ALREADY UPPER")]
    with pytest.raises(LensLawViolation) as caught:
        check_lens_laws(caption_upper, upper_photos, views=[Caption("mixed Case")])
    message = str(caught.value)
    assert "breaks PutGet on sample #0: get(put(v, s)) == v does not hold" in message
    assert "v:" in message and "mixed Case" in message
    assert ".text: 'MIXED CASE' != 'mixed Case'" in message


def test_array_differences_are_located():
    @lens(register=False)
    def lossy(p: Photo) -> Thumb:
        return Thumb(p.pixels)

    @lossy.putter
    def lossy_put(t: Thumb, p: Photo) -> Photo:
        pixels = t.pixels.copy()
        pixels[0, 0, 0] ^= 1  # one bit flipped
        return Photo(pixels=pixels, caption=p.caption, scale=p.scale)

    with pytest.raises(LensLawViolation, match=r"\.pixels: arrays differ at 1 of 48 position\(s\), first at \(0, 0, 0\)"):
        check_lens_laws(lossy, _photos())


def test_a_dtype_change_is_a_violation_even_when_values_match():
    @lens(register=False)
    def widen(p: Photo) -> Thumb:
        return Thumb(p.pixels)

    @widen.putter
    def widen_put(t: Thumb, p: Photo) -> Photo:
        return Photo(pixels=t.pixels.astype(np.int64), caption=p.caption, scale=p.scale)

    with pytest.raises(LensLawViolation, match="dtype int64 != uint8"):
        check_lens_laws(widen, _photos())


def test_nan_equals_nan_so_float_arrays_with_gaps_pass():
    @packable
    class Series:
        values: np.ndarray

    @lens(register=False)
    def same(s: Series) -> Series:
        return Series(s.values.copy())

    @same.putter
    def same_put(v: Series, s: Series) -> Series:
        return Series(v.values.copy())

    data = [Series(np.array([1.0, np.nan, 3.0])), Series(np.array([np.nan, 2.0, np.nan]))]
    assert check_lens_laws(same, data).put_get == 2


def test_custom_eq_is_used_and_mentioned():
    with pytest.raises(LensLawViolation, match="the eq function you passed returned False"):
        check_lens_laws(caption_of, _photos(), eq=lambda a, b: False)
    assert check_lens_laws(caption_of, _photos(), eq=lambda a, b: True).get_put == 4


def test_errors_inside_the_lens_carry_a_note_saying_where():
    @lens(register=False)
    def fragile(p: Photo) -> Caption:
        if p.scale > 1:
            raise ValueError("too big")
        return Caption(p.caption)

    @fragile.putter
    def fragile_put(c: Caption, p: Photo) -> Photo:
        return Photo(p.pixels, c.text, p.scale)

    with pytest.raises(ValueError) as caught:
        check_lens_laws(fragile, _photos())
    assert "get(s) on sample #2" in "".join(caught.value.__notes__)


def test_lens_without_putter_or_samples_is_a_usage_error():
    @lens(register=False)
    def read_only(p: Photo) -> Caption:
        return Caption(p.caption)

    with pytest.raises(LensError, match="has no putter"):
        check_lens_laws(read_only, _photos())
    with pytest.raises(LensError, match="at least one sample"):
        check_lens_laws(caption_of, [])


def test_violation_is_an_assertion_error_for_plain_pytest_use():
    assert issubclass(LensLawViolation, AssertionError)


def test_values_equal_handles_plain_dataclasses_dicts_and_dict_samples():
    @dataclasses.dataclass
    class Plain:
        arr: np.ndarray
        meta: dict

    a = Plain(np.arange(3), {"k": [1, 2]})
    assert values_equal(a, Plain(np.arange(3), {"k": [1, 2]}))
    assert first_difference(a, Plain(np.arange(3), {"k": [1, 3]})) == ".meta['k'][1]: 2 != 3"
    assert values_equal(DictSample(x=np.ones(2)), DictSample(x=np.ones(2)))
    assert not values_equal(DictSample(x=np.ones(2)), DictSample(x=np.zeros(2)))
