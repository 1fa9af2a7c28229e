"""The sim provider (DESIGN §3): an analytical model of an LLM, exact and deterministic.

Every sample is an independent draw from two uniforms hashed out of (run seed [+ binding seed],
example id, node id, sample index) with blake2b — stable across processes and Python versions.
The first uniform decides correct/accept; the second picks which wrong answer or candidate. With a
`refusal_rate`, a third uniform per sample (hashed apart, so the other two stay the same draws) makes
it a refusal: the text "" with finish reason `refusal`, which no op counts as an answer.

Pipelines (docs/sim.md#pipelines): any field may be a mapping node id -> value (with an optional
`default`), resolved per request from its node id; a row's `truths` gives per-node truths; with
`wrong_input_accuracy`, a node whose upstream answers were not all right draws with that accuracy.
Both are resolved in `config_for`, so a sampler only ever reads plain `cfg.<field>` values.
Hot path: per-binding settings are parsed once and cached; a sample costs about a microsecond.
A streamed request (`on_text`, n == 1) gets the same completion, its text in a few pieces spread over
the binding's latency.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
import struct
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from ..answers import extract_answer
from ..errors import ConfigError, ProviderError
from ..spec.diagnostics import did_you_mean
from .base import Completion, Request

DEFAULT_CHOICES = ("A", "B", "C", "D")
FIELDS = ("accuracy", "choices", "wrong_weights", "tpr", "fpr", "judge_accuracy", "refusal_rate", "latency_ms",
          "seed", "wrong_input_accuracy")
DEFAULT_KEY = "default"  # the entry of a per-node mapping that applies to the nodes it does not name
_INV64 = 2.0**-64
_unpack = struct.Struct("<QQ").unpack
_blake2b = hashlib.blake2b

_PREFIX = {
    "generate": "Reasoning (sim).\nAnswer: ",
    "judge": "Comparing the candidates (sim).\nAnswer: ",
    "select": "Selecting the best candidate (sim).\nAnswer: ",
    "verify": "Checking the candidate (sim).\nVerdict: ",
}


def _num(name: str, value: Any, lo: float = 0.0, hi: float = 1.0) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"sim field '{name}' must be a number, got {value!r}") from None
    if not lo <= x <= hi:
        raise ConfigError(f"sim field '{name}' must be between {lo:g} and {hi:g}, got {x:g}")
    return x


class SimConfig:
    """Resolved sim settings for one binding (plus any per-row overrides)."""

    __slots__ = ("accuracy", "judge_accuracy", "tpr", "fpr", "choices", "wrong_weights", "latency_s",
                 "seed", "refusal_rate", "wrong_input_accuracy", "_pools", "_fields", "_per_node", "_nodes",
                 "_wrong_inputs")

    def __init__(self, fields: dict[str, Any]) -> None:
        per_node = {k: v for k, v in fields.items() if isinstance(v, dict)}
        self._fields, self._per_node = fields, per_node
        self._nodes: dict[str, SimConfig] = {}  # node id -> this config with the mappings resolved
        self._wrong_inputs: SimConfig | None = None
        if per_node:  # every entry is checked now; the plain fields below take the `default` entries
            for key in {k for m in per_node.values() for k in m}:
                SimConfig(_resolve(fields, str(key)))
            fields = _resolve(fields, DEFAULT_KEY)
        g = fields.get
        self.accuracy = _num("accuracy", g("accuracy", 0.7))
        ja = g("judge_accuracy")
        self.judge_accuracy = self.accuracy if ja is None else _num("judge_accuracy", ja)
        self.tpr = _num("tpr", g("tpr", 0.9))
        self.fpr = _num("fpr", g("fpr", 0.1))
        self.refusal_rate = _num("refusal_rate", g("refusal_rate", 0.0))
        self.latency_s = _num("latency_ms", g("latency_ms", 0), 0.0, float("inf")) / 1000.0
        seed = g("seed")
        self.seed = 0 if seed is None else int(seed)
        wia = g("wrong_input_accuracy")
        self.wrong_input_accuracy = None if wia is None else _num("wrong_input_accuracy", wia)
        ch = g("choices")
        self.choices: tuple[str, ...] | None = None if ch is None else tuple(str(c) for c in ch)
        if self.choices is not None and not self.choices:
            raise ConfigError("sim field 'choices' must not be empty")
        ww = g("wrong_weights")
        self.wrong_weights: tuple[float, ...] | None = None
        if ww is not None:
            self.wrong_weights = tuple(_num("wrong_weights", w, 0.0, float("inf")) for w in ww)
            if not any(self.wrong_weights):
                raise ConfigError("sim field 'wrong_weights' needs at least one positive weight")
        # (choices, truth) -> (wrong answers, cumulative weights or None for uniform)
        self._pools: dict[tuple, tuple[tuple[str, ...], list[float] | None]] = {}

    def for_node(self, node_id: str) -> SimConfig:
        """The settings of one node: per-node mappings resolved (exact id, else its last segment, else
        `default`, else the field's default)."""
        if not self._per_node:
            return self
        cfg = self._nodes.get(node_id)
        if cfg is None:
            cfg = SimConfig(_resolve(self._fields, node_id))
            if len(self._nodes) < 4096:
                self._nodes[node_id] = cfg
        return cfg

    def with_wrong_inputs(self) -> SimConfig:
        """These settings for a node that read a wrong upstream answer: `accuracy` becomes
        `wrong_input_accuracy` (a judge's `judge_accuracy` keeps its value)."""
        cfg = self._wrong_inputs
        if cfg is None:
            cfg = copy.copy(self)
            cfg.accuracy, cfg.wrong_input_accuracy = self.wrong_input_accuracy, None
            self._wrong_inputs = cfg
        return cfg

    def wrong_pool(self, choices: tuple[str, ...], truth: str | None):
        key = (choices, truth)
        pool = self._pools.get(key)
        if pool is None:
            if truth is not None and truth in choices:
                wrong = tuple(c for c in choices if c != truth)
                cum = self._cumulative(len(wrong), strict=True)
            else:  # no truth, or truth outside the answer space: draw from all choices
                wrong = choices
                cum = self._cumulative(len(wrong), strict=False) if truth is not None else None
            pool = (wrong, cum)
            if len(self._pools) < 4096:
                self._pools[key] = pool
        return pool

    def _cumulative(self, k: int, *, strict: bool) -> list[float] | None:
        w = self.wrong_weights
        if w is None:
            return None
        if len(w) != k:
            if not strict:
                return None
            raise ConfigError(
                f"sim field 'wrong_weights' has {len(w)} weights but there are {k} wrong choices "
                "(one weight per choice, in order, with the correct answer left out)"
            )
        total, cum = sum(w), []
        acc = 0.0
        for x in w:
            acc += x / total
            cum.append(acc)
        return cum


def _resolve(fields: dict[str, Any], node_id: str) -> dict[str, Any]:
    """`fields` with each per-node mapping replaced by its entry for `node_id` (dropped when none applies)."""
    out: dict[str, Any] = {}
    tail = node_id.rsplit("/", 1)[-1]
    for k, v in fields.items():
        if isinstance(v, dict):
            v = v.get(node_id, v.get(tail, v.get(DEFAULT_KEY)))
            if v is None:
                continue
        out[k] = v
    return out


def upstream_correct(upstream: dict[str, Any], truths: dict[str, Any] | None, truth: Any) -> bool:
    """Whether every answer a node read (node id -> answer, or a list of them) equals that node's truth:
    its entry in the row's `truths`, else the row's answer."""
    for node_id, answer in upstream.items():
        expected = truths.get(node_id, truth) if truths else truth
        if expected is None:
            return False
        expected = str(expected).strip()
        for a in answer if isinstance(answer, list) else (answer,):
            if a is None or str(a).strip() != expected:
                return False
    return True


def _check_override_keys(d: dict[str, Any]) -> None:
    for k in d:
        if k not in FIELDS:
            hint = did_you_mean(k, FIELDS)
            raise ConfigError(f"unknown sim field '{k}' in the row's sim overrides" + (f"; {hint}" if hint else ""))


def build_config(binding: dict[str, Any]) -> SimConfig:
    """Parse a binding's sim fields; raises ConfigError on bad values (used by check_binding)."""
    return SimConfig({k: binding[k] for k in FIELDS if binding.get(k) is not None})


class SimProvider:
    name = "sim"
    supports_n = True
    timeout_s = None  # in process, nothing to time out: the runtime adds no timer around its calls
    per_process = True  # each process (each Ray worker) has its own: its gate is not the cluster's

    def __init__(self) -> None:
        self._configs: dict[int, tuple[dict[str, Any], SimConfig]] = {}
        self._row_configs: dict[tuple, tuple[dict[str, Any], dict[str, Any], SimConfig]] = {}

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        return 100_000

    async def aclose(self) -> None:
        self._configs.clear()
        self._row_configs.clear()

    def _base_config(self, binding: dict[str, Any]) -> SimConfig:
        # Bindings are shared dicts from the plan: cache by identity (the stored ref keeps the id unique).
        hit = self._configs.get(id(binding))
        if hit is not None and hit[0] is binding:
            return hit[1]
        cfg = build_config(binding)
        self._configs[id(binding)] = (binding, cfg)
        return cfg

    def config_for(self, request: Request) -> SimConfig:
        """The settings of this request: the binding's, under the row's overrides, resolved for the
        request's node and (with `wrong_input_accuracy`) for whether its upstream answers were right."""
        cfg = self._row_config(request)
        meta = request.meta
        if cfg._per_node:
            cfg = cfg.for_node(meta.get("node_id") or request.binding)
        if cfg.wrong_input_accuracy is not None:
            upstream = meta.get("upstream")
            if upstream and not upstream_correct(upstream, _truths(meta), meta.get("truth")):
                cfg = cfg.with_wrong_inputs()
        return cfg

    def _row_config(self, request: Request) -> SimConfig:
        binding = request.model
        over = request.meta.get("sim")
        if not over:
            return self._base_config(binding)
        key = (id(binding), id(over), request.binding)
        hit = self._row_configs.get(key)
        if hit is not None and hit[0] is binding and hit[1] is over:
            return hit[2]
        cfg = self._merge(binding, over, request.binding)
        if len(self._row_configs) >= 4096:
            self._row_configs.clear()
        self._row_configs[key] = (binding, over, cfg)
        return cfg

    def _merge(self, binding: dict[str, Any], over: dict[str, Any], name: str) -> SimConfig:
        """binding < flat row overrides < row overrides for this binding (exact name, else last segment)."""
        # a field's value may itself be a per-node mapping: a key is a field before it is a binding name
        flat = {k: v for k, v in over.items() if k in FIELDS or not isinstance(v, dict)}
        _check_override_keys(flat)
        per = over.get(name) if name not in FIELDS else None
        if not isinstance(per, dict):
            tail = name.rsplit("/", 1)[-1]
            per = over.get(tail) if tail not in FIELDS else None
        if not isinstance(per, dict):
            per = {}
        _check_override_keys(per)
        if not flat and not per:
            return self._base_config(binding)
        fields = {k: binding[k] for k in FIELDS if binding.get(k) is not None}
        fields.update(flat)
        fields.update(per)
        return SimConfig(fields)

    async def complete(self, request: Request) -> Completion:
        cfg = self.config_for(request)
        if request.on_text is not None and request.n == 1:
            return await self.stream(request, cfg)
        if cfg.latency_s > 0:
            await asyncio.sleep(cfg.latency_s)
        return self.sample(request, cfg)

    async def stream(self, request: Request, cfg: SimConfig) -> Completion:
        """The same completion, its text delivered to `on_text` in up to `STREAM_PIECES` pieces (words
        grouped), each after its share of the latency: the whole reply still takes `latency_ms`."""
        out = self.sample(request, cfg)
        pieces = stream_pieces(out.texts[0])
        for piece in pieces:
            if cfg.latency_s > 0:  # at 0 ms the pieces go out at once: no loop turn each (the server bench)
                await asyncio.sleep(cfg.latency_s / len(pieces))
            request.on_text(piece)  # type: ignore[misc]
        if not pieces and cfg.latency_s > 0:
            await asyncio.sleep(cfg.latency_s)
        return out

    def sample(self, request: Request, cfg: SimConfig) -> Completion:
        meta = request.meta
        get = meta.get
        role = get("role") or "generate"
        sampler = ROLES.get(role)
        if sampler is None:
            raise ProviderError(f"sim: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        truth = get("truth")
        truths = _truths(meta)
        if truths:
            truth = truths.get(get("node_id") or request.binding, truth)
        if truth is not None:
            truth = str(truth).strip()
        seed = get("seed") or 0
        if cfg.seed:
            seed += cfg.seed
        base = _blake2b(
            f"{seed}\x1f{get('example_id', '')}\x1f{get('node_id', request.binding)}\x1f".encode(),
            digest_size=16,
        )
        n = request.n
        draws = Draws(base, get("sample_offset") or 0, n)
        texts = sampler(draws, cfg, meta, truth)
        reasons = ["stop"] * n
        if cfg.refusal_rate > 0.0:
            for j, u in enumerate(draws.refusals()):
                if u * _INV64 < cfg.refusal_rate:
                    texts[j], reasons[j] = "", "refusal"
        out_chars = 0
        for text in texts:
            out_chars += (len(text) + 3) >> 2
        in_chars = 0
        for m in request.messages:
            in_chars += len(m.get("content") or "")
        return Completion(
            texts=texts,
            input_tokens=(in_chars + 3) >> 2,
            output_tokens=out_chars,
            model="sim",
            finish_reasons=reasons,
        )


STREAM_PIECES = 4
_WORDS = re.compile(r"\s*\S+\s*")


def stream_pieces(text: str) -> list[str]:
    """`text` cut at word boundaries into at most `STREAM_PIECES` pieces that join back to it."""
    words = _WORDS.findall(text)
    if not words or "".join(words) != text:  # empty, or whitespace only
        return [text] if text else []
    per = -(-len(words) // STREAM_PIECES)
    return ["".join(words[i:i + per]) for i in range(0, len(words), per)]


class Draws:
    """The uniforms of one request's samples: ``pairs()`` gives two per sample, in sample order, hashed
    from (seed, example, node, sample index) — the same for a sample however requests are split."""

    __slots__ = ("base", "start", "n")

    def __init__(self, base: Any, start: int, n: int) -> None:
        self.base, self.start, self.n = base, start, n

    def pairs(self) -> list[tuple[int, int]]:
        base, out = self.base, []
        for j in range(self.start, self.start + self.n):
            h = base.copy()
            h.update(b"%d" % j)
            out.append(_unpack(h.digest()))
        return out

    def refusals(self) -> list[int]:
        """One more uniform per sample (``refusal_rate``), independent of the two of ``pairs()``."""
        base, out = self.base, []
        for j in range(self.start, self.start + self.n):
            h = base.copy()
            h.update(b"refuse\x1f%d" % j)
            out.append(_unpack(h.digest())[0])
        return out


# A role's sampler: (draws, the binding's settings, request meta, ground truth) -> one text per sample.
Sampler = Callable[[Draws, SimConfig, dict[str, Any], "str | None"], list[str]]


def _generate(draws: Draws, cfg: SimConfig, meta: dict[str, Any], truth: str | None) -> list[str]:
    choices = cfg.choices or _as_choices(meta.get("choices")) or DEFAULT_CHOICES
    wrong, cum = cfg.wrong_pool(choices, truth)
    p, k = cfg.accuracy, len(wrong)
    prefix = _PREFIX["generate"]
    texts: list[str] = []
    for u1, u2 in draws.pairs():
        if truth is not None and (u1 * _INV64 < p or k == 0):
            ans = truth
        elif cum is None:
            ans = wrong[(u2 * k) >> 64]
        else:
            ans = wrong[min(bisect_right(cum, u2 * _INV64), k - 1)]
        texts.append(prefix + ans)
    return texts


def _verify(draws: Draws, cfg: SimConfig, meta: dict[str, Any], truth: str | None) -> list[str]:
    cand = meta.get("candidate_answer")
    if cand is None:
        raw = meta.get("candidate")
        cand = None if raw is None else extract_answer(str(raw))
    correct = cand is not None and str(cand).strip() == truth
    p = 0.5 if truth is None else cfg.tpr if correct else cfg.fpr
    prefix = _PREFIX["verify"]
    return [prefix + ("yes" if u1 * _INV64 < p else "no") for u1, _ in draws.pairs()]


def _choice(role: str) -> Sampler:
    """A judge writes the answer it picks; a selector writes its candidate number."""
    prefix = _PREFIX[role]

    def sample(draws: Draws, cfg: SimConfig, meta: dict[str, Any], truth: str | None) -> list[str]:
        answers = _candidate_answers(meta)
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        if not distinct and role == "select":
            raise ProviderError("sim: select needs at least one candidate")
        has_truth = truth is not None and truth in distinct
        others = [a for a in distinct if a != truth] if has_truth else distinct
        p, k = cfg.judge_accuracy, len(others)
        texts: list[str] = []
        for u1, u2 in draws.pairs():
            if not distinct:  # a judge with nothing to judge answers like a generator
                choices = cfg.choices or _as_choices(meta.get("choices")) or DEFAULT_CHOICES
                ans = truth if truth is not None and u1 * _INV64 < cfg.accuracy else choices[(u2 * len(choices)) >> 64]
            elif has_truth and (k == 0 or u1 * _INV64 < p):
                ans = truth
            else:
                ans = others[(u2 * k) >> 64]
            texts.append(prefix + (str(answers.index(ans) + 1) if role == "select" else ans))
        return texts

    return sample


# The sim's behaviour per request role (DESIGN §3). An op whose requests need another behaviour
# registers a sampler for its role (``PlanOp.sim``; the op registry calls ``register_role``).
ROLES: dict[str, Sampler] = {"generate": _generate, "judge": _choice("judge"), "select": _choice("select"),
                             "verify": _verify}


def register_role(role: str, sampler: Sampler) -> None:
    if ROLES.get(role, sampler) is not sampler:
        raise ValueError(f"sim role '{role}' has a sampler already")
    ROLES[role] = sampler


def _truths(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The row's per-node truths (`"truths": {"locate": "B"}`), None without them."""
    truths = meta.get("truths")
    if truths is None or isinstance(truths, dict):
        return truths
    raise ProviderError(f"sim: a row's 'truths' must map node ids to answers, got {type(truths).__name__}")


def _as_choices(value: Any) -> tuple[str, ...] | None:
    if not value or not isinstance(value, (list, tuple)):
        return None
    return tuple(str(c) for c in value)


def _candidate_answers(meta: dict[str, Any]) -> list[str | None]:
    """Extracted answers, None kept in place (a skipped candidate) so select's index stays aligned."""
    answers = meta.get("candidate_answers")
    if answers is None:  # fall back to raw candidate texts (base.py's `candidates`)
        return [None if t is None else extract_answer(str(t)) for t in meta.get("candidates") or ()]
    return [None if a is None else str(a).strip() for a in answers]
