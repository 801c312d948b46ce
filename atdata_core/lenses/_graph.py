"""The lens graph: which lenses exist between which types, and the shortest chain between two."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from atdata_core.errors import AmbiguousLens, LensError, NoLensPath
from atdata_core.lenses._lens import Lens, compose, identity, type_name

__all__ = ["LensGraph", "default_graph", "find_lens", "register_lens"]

# Enough to tell "one path" from "several"; a graph with more equally short
# paths than this between two types is ambiguous whatever they are.
_MAX_PATHS = 64


class LensGraph:
    """Types as nodes, lenses as edges; finds and composes the shortest chain.

    ``@lens`` registers into the process-wide :func:`default_graph`; build a
    ``LensGraph()`` of your own to keep a set of lenses apart (tests, plugins).

    >>> graph = LensGraph()
    >>> graph.register(rgb_to_gray)      # RGB -> Gray
    >>> graph.register(gray_to_edges)    # Gray -> Edges
    >>> graph.find_lens(RGB, Edges)      # rgb_to_gray >> gray_to_edges

    Two lenses for the same pair of types are allowed in the graph but make a
    look-up that needs that pair fail with :class:`AmbiguousLens`, unless a
    winner is named: ``find_lens(..., prefer=lens)``, :meth:`prefer`, or
    ``register(lens, replace=True)``.
    """

    def __init__(self, lenses: Iterable[Lens] = ()):
        self._lock = threading.RLock()
        # (source, view) -> lenses in registration order
        self._edges: dict[tuple[Any, Any], list[Lens]] = {}
        # source -> views, in first-registration order (keeps BFS deterministic)
        self._out: dict[Any, dict[Any, None]] = {}
        self._preferred: dict[tuple[Any, Any], Lens] = {}
        self._cache: dict[tuple[Any, Any], Lens] = {}
        self._identities: dict[Any, Lens] = {}
        for item in lenses:
            self.register(item)

    # ------------------------------------------------------------------ registration

    def register(self, item: Lens, *, replace: bool = False) -> Lens:
        """Add ``item``. With ``replace=True`` it replaces every lens for its pair of types.

        Registering a module-level lens with the same qualified name
        (``module:function``) as one already registered for the pair replaces
        it: that is the same lens, defined again (a reloaded module, a re-run
        notebook cell). Lenses made inside functions never replace each other
        this way, since one factory can make several different lenses.
        """
        if not isinstance(item, Lens):
            raise LensError(f"only Lens objects can be registered, got {item!r}; decorate the function with @lens")
        if len(item.steps) > 1:
            raise LensError(f"register the parts of {item.name}, not the composition; paths are found by search")
        key = (item.source, item.view)
        with self._lock:
            bucket = self._edges.setdefault(key, [])
            if replace:
                bucket.clear()
                self._preferred.pop(key, None)
            else:
                for i, existing in enumerate(bucket):
                    if existing is item or _redefinition(existing, item):
                        if self._preferred.get(key) is existing:
                            self._preferred[key] = item
                        bucket[i] = item
                        break
                else:
                    bucket.append(item)
            if replace:
                bucket.append(item)
            self._out.setdefault(item.source, {})[item.view] = None
            self._cache.clear()
        return item

    def unregister(self, item: Lens) -> None:
        """Remove ``item`` (a no-op if it is not registered)."""
        key = (item.source, item.view)
        with self._lock:
            bucket = self._edges.get(key, [])
            if item in bucket:
                bucket.remove(item)
            if self._preferred.get(key) is item:
                del self._preferred[key]
            if not bucket:
                self._edges.pop(key, None)
                views = self._out.get(item.source, {})
                views.pop(item.view, None)
            self._cache.clear()

    def prefer(self, item: Lens) -> Lens:
        """Make ``item`` win over any other lens for its pair of types (registering it if needed)."""
        with self._lock:
            if item not in self._edges.get((item.source, item.view), []):
                self.register(item)
            self._preferred[(item.source, item.view)] = item
            self._cache.clear()
        return item

    def clear(self) -> None:
        with self._lock:
            self._edges.clear()
            self._out.clear()
            self._preferred.clear()
            self._cache.clear()

    # ------------------------------------------------------------------ queries

    def lenses(self, source: Any = None, view: Any = None) -> list[Lens]:
        """Registered lenses, optionally only those from ``source`` and/or to ``view``."""
        with self._lock:
            return [
                item
                for (src, dst), bucket in self._edges.items()
                if (source is None or src is source) and (view is None or dst is view)
                for item in bucket
            ]

    def __contains__(self, item: object) -> bool:
        return isinstance(item, Lens) and item in self._edges.get((item.source, item.view), [])

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._edges.values())

    def find_lens(self, source: Any, view: Any, *, prefer: Lens | str | Iterable[Lens | str] | None = None) -> Lens:
        """The lens from ``source`` to ``view``: the shortest chain of registered lenses, composed.

        ``source is view`` gives the identity lens. ``prefer`` names the lens(es)
        that win where several connect the same types or several equally short
        chains exist: Lens objects, or their ``name`` / ``qualified_name``.
        Raises :class:`NoLensPath` or :class:`AmbiguousLens`.
        """
        if source is view:
            with self._lock:
                found = self._identities.get(source)
                if found is None:
                    found = self._identities[source] = identity(source)
            return found
        preferred = _preference_set(prefer)
        with self._lock:
            if not preferred:
                cached = self._cache.get((source, view))
                if cached is not None:
                    return cached
            found = self._search(source, view, preferred)
            if not preferred:
                self._cache[(source, view)] = found
            return found

    # ------------------------------------------------------------------ search

    def _search(self, source: Any, view: Any, preferred: set[Any]) -> Lens:
        type_paths = self._shortest_type_paths(source, view)
        if not type_paths:
            raise NoLensPath(self._no_path_message(source, view))

        def wins(item: Lens) -> bool:
            return item in preferred or item.name in preferred or item.qualified_name in preferred

        # For each path, pick one lens per hop (or record the ambiguous hop).
        candidates: list[tuple[list[Lens], tuple[Any, Any, list[Lens]] | None, bool]] = []
        for path in type_paths:
            chosen: list[Lens] = []
            ambiguous_hop = None
            named = False
            for a, b in zip(path, path[1:]):
                bucket = self._edges[(a, b)]
                picked = [item for item in bucket if wins(item)]
                if picked:
                    named = True
                elif (a, b) in self._preferred:
                    picked = [self._preferred[(a, b)]]
                    named = True
                else:
                    picked = list(bucket)
                if len(picked) > 1 and ambiguous_hop is None:
                    ambiguous_hop = (a, b, picked)
                chosen.append(picked[0])
            candidates.append((chosen, ambiguous_hop, named))

        if len(candidates) > 1:
            named_ones = [c for c in candidates if c[2]]
            if len(named_ones) == 1:
                candidates = named_ones
            else:
                raise AmbiguousLens(self._ambiguous_paths_message(source, view, candidates))
        chosen, ambiguous_hop, _ = candidates[0]
        if ambiguous_hop is not None:
            a, b, items = ambiguous_hop
            raise AmbiguousLens(self._ambiguous_hop_message(source, view, a, b, items))
        return compose(*chosen)

    def _shortest_type_paths(self, source: Any, view: Any) -> list[list[Any]]:
        # Breadth-first search keeping every shortest predecessor of each type.
        depth = {source: 0}
        parents: dict[Any, list[Any]] = {}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if view in depth and depth[node] >= depth[view]:
                break
            for nxt in self._out.get(node, ()):
                if nxt not in depth:
                    depth[nxt] = depth[node] + 1
                    parents[nxt] = [node]
                    queue.append(nxt)
                elif depth[nxt] == depth[node] + 1:
                    parents[nxt].append(node)
        if view not in depth:
            return []
        paths: list[list[Any]] = []

        def walk(node: Any, tail: list[Any]) -> None:
            if len(paths) >= _MAX_PATHS:
                return
            if node is source:
                paths.append([node, *tail])
                return
            for parent in parents[node]:
                walk(parent, [node, *tail])

        walk(view, [])
        return paths

    # ------------------------------------------------------------------ messages

    def _reachable(self, start: Any) -> list[Any]:
        seen = {start: None}
        queue = deque([start])
        while queue:
            for nxt in self._out.get(queue.popleft(), ()):
                if nxt not in seen:
                    seen[nxt] = None
                    queue.append(nxt)
        return [t for t in seen if t is not start]

    def _reaching(self, target: Any) -> list[Any]:
        incoming: dict[Any, list[Any]] = {}
        for (src, dst) in self._edges:
            incoming.setdefault(dst, []).append(src)
        seen = {target: None}
        queue = deque([target])
        while queue:
            for prev in incoming.get(queue.popleft(), ()):
                if prev not in seen:
                    seen[prev] = None
                    queue.append(prev)
        return [t for t in seen if t is not target]

    def _no_path_message(self, source: Any, view: Any) -> str:
        src, dst = type_name(source), type_name(view)
        reach = self._reachable(source)
        reaching = self._reaching(view)
        lines = [f"no lens path from {src} to {dst}."]
        lines.append(
            f"  from {src} the registered lenses reach: {', '.join(map(type_name, reach))}"
            if reach else f"  no registered lens reads {src}"
        )
        lines.append(
            f"  {dst} is reached from: {', '.join(map(type_name, reaching))}"
            if reaching else f"  no registered lens produces {dst}"
        )
        lines.append(
            f"  Register a lens from {src} (or a type it reaches) to {dst} (or a type that reaches it) "
            f"with @lens; {len(self)} lens(es) are registered in this graph"
        )
        return "\n".join(lines)

    def _ambiguous_hop_message(self, source: Any, view: Any, a: Any, b: Any, items: list[Lens]) -> str:
        names = " and ".join(_label(item) for item in items[:2])
        more = f" (and {len(items) - 2} more)" if len(items) > 2 else ""
        via = "" if (a, b) == (source, view) else f" (a hop on the way from {type_name(source)} to {type_name(view)})"
        first = items[0]
        return (
            f"{len(items)} lenses convert {type_name(a)} to {type_name(b)}{via}: {names}{more}. "
            f"Say which wins: find_lens(..., prefer={first.name!r}), graph.prefer({first.name}), "
            f"or register it with replace=True"
        )

    def _ambiguous_paths_message(self, source: Any, view: Any, candidates: list[Any]) -> str:
        shown = []
        for chosen, _, _ in candidates[:3]:
            types = " -> ".join(type_name(t) for t in [chosen[0].source, *(c.view for c in chosen)])
            shown.append(f"{' >> '.join(c.name for c in chosen)} ({types})")
        more = f" (and {len(candidates) - 3} more)" if len(candidates) > 3 else ""
        return (
            f"{len(candidates)} equally short lens paths convert {type_name(source)} to {type_name(view)}: "
            f"{'; '.join(shown)}{more}. Say which wins with prefer=<a lens on the path you want>, "
            f"or graph.prefer(that lens)"
        )


def _label(item: Lens) -> str:
    qualified = item.qualified_name
    if qualified.rsplit(":", 1)[-1].rsplit(".", 1)[-1] == item.name:
        return repr(qualified)
    return f"{item.name!r} ({qualified})"


def _redefinition(existing: Lens, item: Lens) -> bool:
    name = item.qualified_name
    return existing.qualified_name == name and "<locals>" not in name and "<lambda>" not in name


def _preference_set(prefer: Any) -> set[Any]:
    if prefer is None:
        return set()
    if isinstance(prefer, (Lens, str)):
        prefer = [prefer]
    out: set[Any] = set()
    for item in prefer:
        if isinstance(item, Lens):
            out.update(item.steps)
        elif isinstance(item, str):
            out.add(item)
        else:
            raise LensError(f"prefer= takes lenses or lens names, got {item!r}")
    return out


_DEFAULT: LensGraph | None = None
_DEFAULT_LOCK = threading.Lock()


def default_graph() -> LensGraph:
    """The process-wide graph that ``@lens`` registers into."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = LensGraph()
    return _DEFAULT


def find_lens(
    source: Any, view: Any, *, prefer: Lens | str | Iterable[Lens | str] | None = None, graph: LensGraph | None = None
) -> Lens:
    """:meth:`LensGraph.find_lens` on ``graph`` (default: the process-wide graph)."""
    return (graph if graph is not None else default_graph()).find_lens(source, view, prefer=prefer)


def register_lens(item: Lens, *, replace: bool = False, graph: LensGraph | None = None) -> Lens:
    """Register ``item`` in ``graph`` (default: the process-wide graph)."""
    return (graph if graph is not None else default_graph()).register(item, replace=replace)
