"""Lenses, composition, identity and the lens graph.

This module uses ``from __future__ import annotations`` on purpose: every
annotation below is a string, and most types are local to a test function.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

import atdata_core
from atdata_core.errors import AmbiguousLens, LensError, NoLensPath
from atdata_core import lens
from atdata_core.lenses import Lens, LensGraph, compose, default_graph, find_lens, identity
from atdata_core.sample import packable


@dataclasses.dataclass
class Celsius:
    degrees: float


@dataclasses.dataclass
class Fahrenheit:
    degrees: float


@dataclasses.dataclass
class Kelvin:
    degrees: float


@lens(register=False)
def to_fahrenheit(c: Celsius) -> Fahrenheit:
    return Fahrenheit(c.degrees * 9 / 5 + 32)


@to_fahrenheit.putter
def to_fahrenheit_put(f: Fahrenheit, c: Celsius) -> Celsius:
    return Celsius((f.degrees - 32) * 5 / 9)


@lens(register=False)
def f_to_kelvin(f: Fahrenheit) -> Kelvin:
    return Kelvin((f.degrees - 32) * 5 / 9 + 273.15)


@f_to_kelvin.putter
def f_to_kelvin_put(k: Kelvin, f: Fahrenheit) -> Fahrenheit:
    return Fahrenheit((k.degrees - 273.15) * 9 / 5 + 32)


# ---------------------------------------------------------------------- the Lens object


def test_types_come_from_string_annotations_of_module_level_classes():
    assert to_fahrenheit.source is Celsius
    assert to_fahrenheit.view is Fahrenheit
    assert to_fahrenheit.name == "to_fahrenheit"


def test_types_come_from_string_annotations_of_classes_local_to_a_function():
    @dataclasses.dataclass
    class Local:
        x: int

    @dataclasses.dataclass
    class LocalView:
        y: int

    @lens(register=False)
    def local_lens(s: Local) -> LocalView:
        return LocalView(s.x)

    assert (local_lens.source, local_lens.view) == (Local, LocalView)
    assert local_lens(Local(3)) == LocalView(3)


def test_get_put_and_call():
    c = Celsius(100.0)
    assert to_fahrenheit.get(c) == Fahrenheit(212.0)
    assert to_fahrenheit(c) == to_fahrenheit.get(c)
    assert to_fahrenheit.put(Fahrenheit(32.0), c) == Celsius(0.0)


def test_putter_decorator_returns_the_lens_so_the_getter_name_can_be_reused():
    @lens(register=False)
    def twice(c: Celsius) -> Fahrenheit:
        return Fahrenheit(c.degrees * 2)

    @twice.putter
    def twice(f: Fahrenheit, c: Celsius) -> Celsius:  # noqa: F811  (property-style reuse of the name)
        return Celsius(f.degrees / 2)

    assert isinstance(twice, Lens)
    assert twice.put(Fahrenheit(10.0), Celsius(0.0)) == Celsius(5.0)


def test_put_without_putter_names_the_lens():
    @lens(register=False)
    def read_only(c: Celsius) -> Fahrenheit:
        return Fahrenheit(c.degrees)

    with pytest.raises(LensError, match="lens read_only has no putter"):
        read_only.put(Fahrenheit(1.0), Celsius(1.0))


def test_missing_annotations_are_an_error_unless_types_are_given():
    with pytest.raises(LensError, match="cannot tell the source and view type"):

        @lens(register=False)
        def bare(c):
            return c

    @lens(register=False, source=Celsius, view=Fahrenheit)
    def explicit(c):
        return Fahrenheit(c.degrees)

    assert (explicit.source, explicit.view) == (Celsius, Fahrenheit)


def test_unresolvable_annotation_is_a_clear_error():
    with pytest.raises(LensError, match="NoSuchType"):

        @lens(register=False)
        def broken(c: NoSuchType) -> Fahrenheit:  # noqa: F821
            return Fahrenheit(0.0)


def test_putter_annotated_with_wrong_types_is_refused():
    with pytest.raises(LensError, match="should be Celsius"):

        @to_fahrenheit.putter
        def wrong(f: Fahrenheit, c: Celsius) -> Kelvin:
            return Kelvin(0.0)


def test_atdata_core_lens_is_the_decorator_after_the_lenses_package_is_imported():
    import atdata_core.lenses  # noqa: F401  (a submodule import must not shadow the decorator)

    # Classes local to this function, annotations as strings (this module uses
    # `from __future__ import annotations`): the decorator must read this frame.
    @dataclasses.dataclass
    class A:
        x: int

    @dataclasses.dataclass
    class B:
        y: int

    @atdata_core.lens(register=False)
    def a_to_b(a: A) -> B:
        return B(a.x + 1)

    assert callable(atdata_core.lens) and not isinstance(atdata_core.lens, type(atdata_core))
    assert isinstance(a_to_b, Lens)
    assert (a_to_b.source, a_to_b.view) == (A, B)
    assert a_to_b.get(A(1)) == B(2)


def test_no_module_is_named_lens():
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("atdata_core.lens")


# ---------------------------------------------------------------------- composition and identity


def test_composition_gets_through_both_and_puts_back_through_both():
    c_to_k = to_fahrenheit >> f_to_kelvin
    assert (c_to_k.source, c_to_k.view) == (Celsius, Kelvin)
    assert c_to_k.get(Celsius(0.0)).degrees == pytest.approx(273.15)
    # put(v, s) = l1.put(l2.put(v, l1.get(s)), s)
    assert c_to_k.put(Kelvin(373.15), Celsius(0.0)).degrees == pytest.approx(100.0)
    assert compose(to_fahrenheit, f_to_kelvin).get(Celsius(10.0)) == c_to_k.get(Celsius(10.0))
    assert c_to_k.steps == (to_fahrenheit, f_to_kelvin)


def test_composition_passes_the_intermediate_source_to_each_putter():
    @dataclasses.dataclass
    class Outer:
        inner: Inner
        tag: str

    @dataclasses.dataclass
    class Inner:
        value: int
        note: str

    @lens(register=False)
    def inner_of(o: Outer) -> Inner:
        return o.inner

    @inner_of.putter
    def inner_put(i: Inner, o: Outer) -> Outer:
        return Outer(i, o.tag)

    @lens(register=False)
    def value_of(i: Inner) -> int:
        return i.value

    @value_of.putter
    def value_put(v: int, i: Inner) -> Inner:
        return Inner(v, i.note)

    deep = inner_of >> value_of
    updated = deep.put(42, Outer(Inner(1, "kept"), "also kept"))
    assert updated == Outer(Inner(42, "kept"), "also kept")


def test_composing_lenses_whose_types_do_not_meet_is_refused():
    with pytest.raises(LensError, match="gives Kelvin but to_fahrenheit reads Celsius"):
        f_to_kelvin >> to_fahrenheit


def test_composition_without_every_putter_has_no_putter():
    @lens(register=False)
    def k_to_text(k: Kelvin) -> str:
        return f"{k.degrees:.1f}K"

    chain = to_fahrenheit >> f_to_kelvin >> k_to_text
    assert chain.get(Celsius(0.0)) == "273.1K"
    assert not chain.has_putter
    with pytest.raises(LensError, match="has no putter"):
        chain.put("0K", Celsius(0.0))


def test_identity_changes_nothing_and_vanishes_in_composition():
    ident = identity(Celsius)
    c = Celsius(5.0)
    assert ident.get(c) is c
    assert ident.put(Celsius(6.0), c) == Celsius(6.0)
    assert (ident.source, ident.view) == (Celsius, Celsius)
    assert (ident >> to_fahrenheit) is to_fahrenheit
    assert (to_fahrenheit >> identity(Fahrenheit)) is to_fahrenheit


# ---------------------------------------------------------------------- the graph


def _types(*names: str) -> dict[str, type]:
    return {name: type(name, (), {}) for name in names}


def _edge(graph: LensGraph, src: type, dst: type, name: str | None = None, **kwargs) -> Lens:
    item = Lens(lambda s, dst=dst: dst(), lambda v, s: s, source=src, view=dst,
                name=name or f"{src.__name__}_to_{dst.__name__}")
    return graph.register(item, **kwargs)


def test_registering_a_to_b_and_b_to_c_finds_a_to_c():
    t = _types("A", "B", "C")
    graph = LensGraph()
    ab = _edge(graph, t["A"], t["B"])
    bc = _edge(graph, t["B"], t["C"])
    found = graph.find_lens(t["A"], t["C"])
    assert found.steps == (ab, bc)
    assert isinstance(found.get(t["A"]()), t["C"])


def test_the_shortest_path_wins():
    t = _types("A", "B", "C", "D", "E")
    graph = LensGraph()
    # the long way is registered first, so registration order cannot be what picks the short one
    ad = _edge(graph, t["A"], t["D"])
    de = _edge(graph, t["D"], t["E"])
    ec = _edge(graph, t["E"], t["C"])
    ab = _edge(graph, t["A"], t["B"])
    bc = _edge(graph, t["B"], t["C"])
    assert graph.find_lens(t["A"], t["C"]).steps == (ab, bc)
    assert graph.find_lens(t["A"], t["E"]).steps == (ad, de)
    assert ec in graph


def test_same_type_gives_identity():
    t = _types("A")
    found = LensGraph().find_lens(t["A"], t["A"])
    sample = t["A"]()
    assert found.get(sample) is sample
    assert (found.source, found.view) == (t["A"], t["A"])


def test_two_lenses_for_one_pair_are_ambiguous_at_lookup_and_named():
    t = _types("A", "B", "C")
    graph = LensGraph()
    first = _edge(graph, t["A"], t["B"], "first_way")
    second = _edge(graph, t["A"], t["B"], "second_way")
    _edge(graph, t["B"], t["C"])
    for target in (t["B"], t["C"]):
        with pytest.raises(AmbiguousLens) as caught:
            graph.find_lens(t["A"], target)
        message = str(caught.value)
        assert "first_way" in message and "second_way" in message
        assert "prefer" in message
    # an unrelated look-up is not affected
    assert graph.find_lens(t["B"], t["C"]).name == "B_to_C"
    assert graph.find_lens(t["A"], t["B"], prefer=second).steps == (second,)
    assert graph.find_lens(t["A"], t["C"], prefer="first_way").steps[0] is first


def test_graph_preference_and_replace_settle_ambiguity():
    t = _types("A", "B")
    graph = LensGraph()
    _edge(graph, t["A"], t["B"], "first_way")
    second = _edge(graph, t["A"], t["B"], "second_way")
    graph.prefer(second)
    assert graph.find_lens(t["A"], t["B"]) is second

    other = LensGraph()
    _edge(other, t["A"], t["B"], "old")
    new = _edge(other, t["A"], t["B"], "new", replace=True)
    assert other.find_lens(t["A"], t["B"]) is new
    assert [item.name for item in other.lenses(t["A"], t["B"])] == ["new"]


def test_equally_short_paths_are_ambiguous_until_one_is_preferred():
    t = _types("A", "B", "D", "C")
    graph = LensGraph()
    ab = _edge(graph, t["A"], t["B"])
    _edge(graph, t["B"], t["C"])
    _edge(graph, t["A"], t["D"])
    _edge(graph, t["D"], t["C"])
    with pytest.raises(AmbiguousLens, match="2 equally short lens paths"):
        graph.find_lens(t["A"], t["C"])
    assert graph.find_lens(t["A"], t["C"], prefer=ab).steps[0] is ab


def test_no_path_names_both_types_and_what_they_connect_to():
    t = _types("A", "B", "X", "Y", "Lonely")
    graph = LensGraph()
    _edge(graph, t["A"], t["B"])
    _edge(graph, t["X"], t["Y"])
    with pytest.raises(NoLensPath) as caught:
        graph.find_lens(t["A"], t["Y"])
    message = str(caught.value)
    assert "from A to Y" in message
    assert "from A the registered lenses reach: B" in message
    assert "Y is reached from: X" in message
    with pytest.raises(NoLensPath, match="no registered lens reads Lonely"):
        graph.find_lens(t["Lonely"], t["B"])


def test_registration_invalidates_cached_paths():
    t = _types("A", "B", "C")
    graph = LensGraph()
    _edge(graph, t["A"], t["B"])
    _edge(graph, t["B"], t["C"])
    assert len(graph.find_lens(t["A"], t["C"]).steps) == 2
    direct = _edge(graph, t["A"], t["C"], "shortcut")
    assert graph.find_lens(t["A"], t["C"]) is direct
    graph.unregister(direct)
    assert len(graph.find_lens(t["A"], t["C"]).steps) == 2


def test_redefining_a_module_level_lens_replaces_it():
    graph = LensGraph()
    cell = (
        "@lens(graph=graph)\n"
        "def shift(c: Celsius) -> Fahrenheit:\n"
        "    return Fahrenheit(c.degrees + offset)\n"
    )
    namespace = {"__name__": "notebook", "lens": lens, "graph": graph, "Celsius": Celsius, "Fahrenheit": Fahrenheit}
    namespace["offset"] = 1.0
    exec(cell, namespace)
    namespace["offset"] = 2.0
    exec(cell, namespace)  # the same cell run again
    assert len(graph.lenses(Celsius, Fahrenheit)) == 1
    assert graph.find_lens(Celsius, Fahrenheit).get(Celsius(0.0)) == Fahrenheit(2.0)


def test_lenses_made_by_one_factory_function_do_not_replace_each_other():
    graph = LensGraph()

    def make(offset: float) -> Lens:
        @lens(graph=graph)
        def shift(c: Celsius) -> Fahrenheit:
            return Fahrenheit(c.degrees + offset)

        return shift

    make(1.0)
    make(2.0)
    with pytest.raises(AmbiguousLens):
        graph.find_lens(Celsius, Fahrenheit)


def test_at_lens_registers_in_the_default_graph_unless_told_not_to():
    @dataclasses.dataclass
    class Src:
        n: int

    @dataclasses.dataclass
    class Dst:
        n: int

    @lens
    def src_to_dst(s: Src) -> Dst:
        return Dst(s.n)

    @lens(register=False)
    def unregistered(s: Dst) -> Src:
        return Src(s.n)

    try:
        assert find_lens(Src, Dst) is src_to_dst
        assert src_to_dst in default_graph()
        assert unregistered not in default_graph()
        with pytest.raises(NoLensPath):
            find_lens(Dst, Src)
    finally:
        default_graph().unregister(src_to_dst)


def test_dataset_style_lookup_with_packable_samples():
    @packable
    class Image:
        pixels: np.ndarray
        label: str

    @packable
    class Label:
        label: str

    graph = LensGraph()

    @lens(graph=graph)
    def label_of(img: Image) -> Label:
        return Label(img.label)

    found = graph.find_lens(Image, Label)
    assert found.get(Image(np.zeros((2, 2), np.uint8), "cat")) == Label("cat")


# ---------------------------------------------------------------------- pickling (data-loader workers)


def test_lenses_pickle_by_reference_and_composed_ones_by_parts():
    assert pickle.loads(pickle.dumps(to_fahrenheit)) is to_fahrenheit
    chain = pickle.loads(pickle.dumps(to_fahrenheit >> f_to_kelvin))
    assert chain.steps == (to_fahrenheit, f_to_kelvin)
    assert chain.put(Kelvin(273.15), Celsius(5.0)).degrees == pytest.approx(0.0)
    ident = pickle.loads(pickle.dumps(identity(Celsius)))
    assert ident.get(Celsius(1.0)) == Celsius(1.0)


def test_a_lens_rebuilt_from_a_decorated_lens_functions_pickles():
    rebuilt = Lens(to_fahrenheit.getter, to_fahrenheit.putter_function, source=Celsius, view=Fahrenheit,
                   name="copy")
    copy = pickle.loads(pickle.dumps(rebuilt))
    assert copy.get(Celsius(100.0)) == Fahrenheit(212.0)
    assert copy.put(Fahrenheit(212.0), Celsius(0.0)) == Celsius(100.0)
