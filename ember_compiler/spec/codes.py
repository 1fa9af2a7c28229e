"""The diagnostic codes of `ember validate`, each defined once: code, name, summary, why, fix, severity.

This registry is the only list of codes. `Diagnostic` refuses a code that is not here, `ember explain
CODE` prints an entry (`explain_text`), `codes_markdown()` is the table of docs/diagnostics.md, and a
test checks that every code has an invalid fixture under tests/fixtures/invalid/. Codes are stable:
never reuse or renumber one.

To add a code: add one `Code(...)` below (in numeric order, errors `E`, warnings `W`), emit it, and add
an invalid fixture whose `# expect:` header names it.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ember_compiler.errors import UsageError

__all__ = ["CODES", "Code", "all_codes", "codes_markdown", "explain_text", "lookup"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str  # "E201"
    name: str  # kebab-case, "unknown-node"
    summary: str  # one line: what is wrong
    why: str  # why it is a problem
    fix: str  # what to write instead (often a before/after snippet)
    severity: str = "error"  # "error" | "warning"

    @property
    def title(self) -> str:
        return f"{self.code} {self.name}"


_CODE_RE = re.compile(r"^[EW]\d{3}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

_ALL = (
    # -- E1xx: reading the file and its structure -------------------------------------------------------
    Code("E100", "syntax-error",
         "syntax error (YAML/JSON), undecodable bytes, nesting the parser cannot handle",
         "The file cannot be parsed, so nothing else in it can be checked. Usually an unclosed bracket or "
         "quote, a missing comma in JSON, a tab used for YAML indentation, or a file that is not UTF-8.",
         "Fix the syntax at the reported position; save the file as UTF-8.\n\n"
         "  # before\n  nodes: {a: {op: vote, candidates: [x]}\n\n"
         "  # after\n  nodes: {a: {op: vote, candidates: [x]}}"),
    Code("E101", "duplicate-key",
         "duplicate key",
         "YAML and JSON parsers silently keep the last of two equal keys, so one of the two values would be "
         "ignored without a word. Ember refuses the file instead.",
         "Keep one of the keys (or rename the second, e.g. a second node).\n\n"
         "  # before\n  a: {op: generate, model: m, prompt: hi}\n  a: {op: vote, candidates: ['${a.answer}']}\n\n"
         "  # after\n  a: {op: generate, model: m, prompt: hi}\n  b: {op: vote, candidates: ['${a.answer}']}"),
    Code("E102", "unsupported-tag",
         "unsupported tag or YAML type (`!!python/object`, `!!binary`, `!!set`, custom tags)",
         "Specs are data: tags that build objects or run code are never executed, and types without a JSON "
         "equivalent cannot be validated or compiled to a plan.",
         "Write plain YAML values (strings, numbers, booleans, lists, mappings).\n\n"
         "  # before\n  candidates: !!python/object/apply:os.system [\"echo pwned\"]\n\n"
         "  # after\n  candidates: [\"${a.answer}\", \"${b.answer}\"]"),
    Code("E103", "not-a-spec-document",
         "empty document, top level not a mapping, recursive alias, too deep or too large",
         "A spec is one mapping with `ember: 1` at the top; an empty file, a list, a recursive alias or a "
         "gigantic document has no spec in it (or cannot be checked safely).",
         "Start the file with the spec's keys at the top level.\n\n"
         "  # before\n  - ember: 1\n  - name: qa\n\n"
         "  # after\n  ember: 1\n  name: qa"),
    Code("E104", "unreadable-path",
         "path cannot be read (missing file or folder, permission, not a regular file, over --max-spec-bytes)",
         "A path given to `ember validate` (or a spec file) does not exist or cannot be opened, so it was not "
         "validated at all. Only regular files are read: a FIFO, a device (`/dev/zero`), a socket or "
         "`/dev/stdin` on a pipe is refused rather than read without end, and a file over the size limit "
         "(default 2,000,000 bytes) is refused before it is parsed.",
         "Check the path for typos and its permissions; folders are searched for *.yaml, *.yml and *.json. "
         "For a larger spec, pass `--max-spec-bytes N`.\n\n"
         "  # before\n  ember validate specs/qa.ymal\n\n"
         "  # after\n  ember validate specs/qa.yaml"),
    Code("E110", "unknown-key",
         "unknown key (did you mean ...)",
         "Ember does not know the key, so whatever it was meant to set (often a misspelt field) would have no "
         "effect.",
         "Use the suggested spelling, or remove the key.\n\n"
         "  # before\n  models:\n    m: {provider: sim, temprature: 0.2}\n\n"
         "  # after\n  models:\n    m: {provider: sim, temperature: 0.2}"),
    Code("E111", "missing-field",
         "missing required field",
         "The op (or section) cannot do its job without this field, e.g. a `vote` without `candidates`.",
         "Add the field the message names.\n\n"
         "  # before\n  a: {op: vote}\n\n"
         "  # after\n  a: {op: vote, candidates: [\"${x.answer}\", \"${y.answer}\"]}"),
    Code("E112", "invalid-value",
         "wrong type or value (type, enum, range, name pattern, spec version)",
         "The value is not one the field accepts: a string where a number belongs, a value outside its range, "
         "a name with spaces, or a spec version this Ember does not understand.",
         "Write a value of the type and range the message names; ids use letters, digits, `_` and `-`.\n\n"
         "  # before\n  nodes:\n    \"my node\": {op: generate, model: m, prompt: hi}\n\n"
         "  # after\n  nodes:\n    my-node: {op: generate, model: m, prompt: hi}"),
    Code("E113", "unknown-op",
         "unknown op",
         "`op:` decides what a node does; an op Ember does not have cannot be compiled.",
         "Use one of Ember's ops, usually the one the hint suggests.\n\n"
         "  # before\n  a: {op: ensembel, model: m, n: 5, prompt: hi}\n\n"
         "  # after\n  a: {op: ensemble, model: m, n: 5, prompt: hi}"),
    Code("E114", "bad-input-default",
         "an input's default does not match its declared type",
         "The default is used when a run does not pass the input; a default of the wrong type would fail (or "
         "silently misbehave) only at run time.",
         "Give a default of the declared type, or change the type.\n\n"
         "  # before\n  inputs: {k: {type: integer, default: three}}\n\n"
         "  # after\n  inputs: {k: {type: integer, default: 3}}"),
    Code("E115", "bad-search-path",
         "a `search:` path names nothing in the spec",
         "`search:` declares the space `ember optimize` searches, with the paths `--set` takes "
         "(`nodes.NODE.FIELD`, `params.NAME`, `models.NAME.FIELD`); a path to an unknown node, param or model "
         "would fail the search at its first point.",
         "Name a node, param or model the spec declares (see the suggestion).\n\n"
         "  # before\n  search: {nodes.slove.model: [small, large]}\n\n"
         "  # after\n  search: {nodes.solve.model: [small, large]}"),
    # -- E2xx: references, templates and outputs --------------------------------------------------------
    Code("E201", "unknown-node",
         "reference to an unknown node",
         "`${NODE.PORT}` and `{{ NODE.PORT }}` read another node's output; a node that does not exist (often a "
         "typo) has no output to read.",
         "Name an existing node (see the suggestion).\n\n"
         "  # before\n  b: {op: vote, candidates: \"${candidate.responses}\"}\n\n"
         "  # after\n  b: {op: vote, candidates: \"${candidates.responses}\"}"),
    Code("E202", "unknown-port",
         "unknown output port of a node (`${a.answr}`, `{{ a.answr }}`)",
         "Each op has fixed output ports (e.g. `generate`: text, answer); a port the node does not have has no "
         "value.",
         "Use one of the node's ports (see the suggestion).\n\n"
         "  # before\n  outputs: {answer: \"${final.answr}\"}\n\n"
         "  # after\n  outputs: {answer: \"${final.answer}\"}"),
    Code("E203", "unknown-input",
         "unknown input (`${inputs.x}`, `{{ inputs.x }}`)",
         "The reference reads a spec input that is not declared under `inputs:`, so no run could pass it.",
         "Declare the input, or fix the name.\n\n"
         "  # before\n  inputs: {question: string}\n  # ...\n  prompt: \"{{ inputs.qestion }}\"\n\n"
         "  # after\n  inputs: {question: string}\n  # ...\n  prompt: \"{{ inputs.question }}\""),
    Code("E204", "unknown-param",
         "unknown param (`${params.x}`)",
         "The reference reads a param that is not declared under `params:`, so it has no value to compile in.",
         "Declare the param (with its value), or fix the name.\n\n"
         "  # before\n  params: {samples: 5}\n  # ...\n  n: ${params.sample}\n\n"
         "  # after\n  params: {samples: 5}\n  # ...\n  n: ${params.samples}"),
    Code("E205", "cycle",
         "cycle, named like `a -> b -> a`",
         "Nodes run after the nodes they read; when nodes read each other (through references, templates or "
         "`when:`) none of them can run first.",
         "Break the cycle: one of the nodes must not read the other.\n\n"
         "  # before\n  a: {op: generate, model: m, prompt: \"{{ b.answer }}\"}\n"
         "  b: {op: generate, model: m, prompt: \"{{ a.answer }}\"}\n\n"
         "  # after\n  a: {op: generate, model: m, prompt: \"{{ inputs.q }}\"}\n"
         "  b: {op: generate, model: m, prompt: \"{{ a.answer }}\"}"),
    Code("E206", "malformed-reference",
         "malformed reference, or a reference where none is allowed",
         "A `${...}` must be `${inputs.NAME}`, `${params.NAME}` or `${NODE.PORT}`; anything else (a node "
         "without a port, an unclosed `${`) cannot be resolved, and some fields take no references at all.",
         "Write a complete reference, with the port for a node.\n\n"
         "  # before\n  candidates: [\"${a}\"]\n\n"
         "  # after\n  candidates: [\"${a.answer}\"]"),
    Code("E207", "unknown-template-variable",
         "template variable that is not `inputs`, `params` or another node",
         "Templates see only `inputs`, `params` and the other nodes; any other name is undefined and would "
         "render as an error (or as nothing).",
         "Prefix spec inputs with `inputs.`, params with `params.`.\n\n"
         "  # before\n  prompt: \"Answer this: {{ question }}\"\n\n"
         "  # after\n  prompt: \"Answer this: {{ inputs.question }}\""),
    Code("E208", "template-syntax-error",
         "template or `when:` expression syntax error",
         "The Jinja template (or the `when:` expression) cannot be parsed, so it cannot be rendered.",
         "Close every `{{ ... }}` / `{% ... %}`; write `when:` as a bare expression, without `{{ }}`.\n\n"
         "  # before\n  prompt: \"{{ a.answer }\"\n  when: \"{{ a.answer == 'yes' }}\"\n\n"
         "  # after\n  prompt: \"{{ a.answer }}\"\n  when: a.answer == 'yes'"),
    Code("E209", "invalid-output",
         "output that is not one reference to an existing node port, input or param",
         "An output names one value of the finished run; text around the reference, or a reference to nothing, "
         "gives it no value.",
         "Make each output exactly one reference; build text in a node instead.\n\n"
         "  # before\n  outputs: {answer: \"final: ${final.answer}\"}\n\n"
         "  # after\n  outputs: {answer: \"${final.answer}\"}"),
    # -- E3xx: op rules -------------------------------------------------------------------------------
    Code("E301", "ensemble-models",
         "ensemble needs exactly one of `model` / `models` (and `models` not empty)",
         "An ensemble samples one model `n` times (`model:`) or each model of a list once (`models:`); both, "
         "neither, or an empty list leave it without a meaning.",
         "Give exactly one of the two.\n\n"
         "  # before\n  a: {op: ensemble, model: m, models: [m, k], prompt: hi}\n\n"
         "  # after\n  a: {op: ensemble, models: [m, k], prompt: hi}"),
    Code("E302", "bad-count",
         "`n` / `max_rounds` not an integer >= 1 after params, or not known before running",
         "The number of calls must be known when compiling (it decides the plan's width and cost); a count "
         "from an input, or one below 1, is not.",
         "Use a literal integer >= 1 or a `${params.NAME}` holding one (change it with `--set`).\n\n"
         "  # before\n  params: {n: 0}\n  # ...\n  n: ${inputs.n}\n\n"
         "  # after\n  params: {n: 5}\n  # ...\n  n: ${params.n}"),
    Code("E303", "bad-extract-regex",
         "`extract` is not a valid regex with exactly one group",
         "`extract:` pulls the answer out of a model's text: the answer is its one capture group, so the "
         "regex must compile and have exactly one group.",
         "Balance the parentheses and keep one capturing group (use `(?:...)` for the others).\n\n"
         "  # before\n  extract: \"Answer: (\\\\w+\"\n\n"
         "  # after\n  extract: \"Answer: (\\\\w+)\""),
    Code("E304", "bad-subspec",
         "network sub-spec missing, unreadable, invalid, or included recursively",
         "A `network` (or `map`) node runs another spec; it must exist and be valid itself, and a spec that "
         "includes itself (directly or not) never ends.",
         "Point `spec:` at a valid file, relative to the including spec; fix the errors reported in it.\n\n"
         "  # before\n  inner: {op: network, spec: sub/qa.yml}\n\n"
         "  # after\n  inner: {op: network, spec: sub/qa.yaml}"),
    Code("E305", "unknown-with-key",
         "`with:` key that is not an input of the sub-spec",
         "`with:` binds the sub-spec's inputs; a key that is not one of them binds nothing.",
         "Use the sub-spec's input names (see the suggestion).\n\n"
         "  # before\n  with: {qestion: \"${inputs.q}\"}\n\n"
         "  # after\n  with: {question: \"${inputs.q}\"}"),
    Code("E306", "unbound-subspec-input",
         "required sub-spec input (no default) not bound in `with:`",
         "The sub-spec needs this input to run and has no default for it.",
         "Bind it in `with:` (or give it a default in the sub-spec).\n\n"
         "  # before\n  inner: {op: network, spec: sub/qa.yaml, with: {style: long}}\n\n"
         "  # after\n  inner: {op: network, spec: sub/qa.yaml, with: {style: long, question: \"${inputs.q}\"}}"),
    Code("E307", "bad-python-call",
         "python `call:` is neither `package.module:Name` nor a name registered in `ember.operators`",
         "Ember must find the operator class to run the node; any other form names nothing it can import.",
         "Write `module:Class` (importable, or next to the spec), or an `ember.operators` entry-point name.\n\n"
         "  # before\n  call: my_ops.Shout\n\n"
         "  # after\n  call: my_ops:Shout"),
    Code("E308", "operator-not-importable",
         "python operator cannot be imported or is not an operator (only with `validate --import`)",
         "With `--import` the operator's module is imported: it failed to import, has no such name, or the "
         "name is not an operator class (an `Input` and `Output` pydantic model and a `forward`).",
         "Fix the module or the name; the class must subclass `ember_compiler.Operator`.\n\n"
         "  # before\n  call: my_ops:shout      # a function\n\n"
         "  # after\n  call: my_ops:Shout      # class Shout(Operator) with Input, Output, forward"),
    Code("E309", "operator-input-mismatch",
         "python `with:` does not fit the operator's `Input`: unknown or missing field, wrong type (--import)",
         "`with:` fills the operator's `Input` model; an unknown field, a missing required one or a value of "
         "the wrong type would fail when the node runs.",
         "Bind exactly the fields of the operator's `Input`, with values of their types.\n\n"
         "  # before\n  with: {txt: \"${inputs.q}\", times: \"${inputs.items}\"}   # Input: text: str, times: int\n\n"
         "  # after\n  with: {text: \"${inputs.q}\", times: 2}"),
    Code("E310", "bad-operator-init",
         "python `init:` not static, or not matching the operator's constructor (the latter with --import)",
         "`init:` builds the operator once, before any row runs, so it cannot read inputs or other nodes; and "
         "it must be arguments the constructor accepts.",
         "Use literals or one `${params.NAME}` in `init:`; pass run-time values through `with:`.\n\n"
         "  # before\n  init: {suffix: \"${inputs.q}\"}\n\n"
         "  # after\n  init: {suffix: \"!\"}\n  with: {text: \"${inputs.q}\"}"),
    Code("E311", "bad-map",
         "map needs exactly one of `spec` / `node`; an inline node cannot be a network or a map; `with:` "
         "only goes with `spec`",
         "A map runs either a sub-spec or one inline node per item; nesting a network or map inline, or "
         "binding `with:` for an inline node, has no defined meaning.",
         "Give one of `spec:` / `node:`; put a nested network in a sub-spec.\n\n"
         "  # before\n  each: {op: map, over: \"${inputs.qs}\", spec: qa.yaml, node: {op: generate, model: w, prompt: hi}}\n\n"
         "  # after\n  each: {op: map, over: \"${inputs.qs}\", node: {op: generate, model: w, prompt: \"{{ inputs.item }}\"}}"),
    Code("E312", "map-as-not-an-input",
         "map `as:` names no input of its sub-spec",
         "`as:` names the sub-spec input each item is bound to; a name that is not an input binds nothing.",
         "Set `as:` to one of the sub-spec's inputs.\n\n"
         "  # before\n  each: {op: map, over: \"${inputs.qs}\", spec: qa.yaml, as: qestion}\n\n"
         "  # after\n  each: {op: map, over: \"${inputs.qs}\", spec: qa.yaml, as: question}"),
    Code("E313", "subspec-outside-folder",
         "`network`/`map` sub-spec outside the folder tree of the spec being checked and the working directory",
         "A spec from a pull request or a shared repository could name `~/.env` or `/etc/passwd` as a "
         "sub-spec; reading it and quoting it in a diagnostic would put its content into CI logs. "
         "Sub-specs must live under the top spec's folder or the working directory (the project) unless "
         "`--allow-outside` is given, and a sub-spec that is not an Ember spec is reported by path and code "
         "only, never by its content.",
         "Move the sub-spec under the spec's folder, or pass `--allow-outside` if you trust the path.\n\n"
         "  # before\n  inner: {op: network, spec: ../../shared/qa.yaml}\n\n"
         "  # after\n  inner: {op: network, spec: shared/qa.yaml}"),
    Code("E314", "count-over-limit",
         "`n`, `max_rounds` or a literal map list over its limit",
         "`n: 1000000000` or `max_rounds: 100000000` validate as numbers but would take gigabytes to compile "
         "or run. The limits (n 10,000, rounds 1,000, map items 100,000) sit far above real use; a map's "
         "items that come from inputs are checked when it runs.",
         "Lower the count, or raise the limit with `--size-limit n=N` (`rounds`, `fanout`).\n\n"
         "  # before\n  samples: {op: ensemble, model: w, n: 1000000000, prompt: hi}\n\n"
         "  # after\n  samples: {op: ensemble, model: w, n: 64, prompt: hi}"),
    Code("E315", "plan-too-large",
         "the plan after inlining sub-specs and unrolling rounds has too many nodes or model calls",
         "Sub-specs multiply: 24 levels of two `network` nodes each inline into 2^24 nodes, which no compile "
         "finishes. The size is counted at validate time without inlining (limits: 20,000 plan nodes, "
         "1,000,000 model calls per run).",
         "Share one sub-spec through a `map` instead of copies, or raise the limit with "
         "`--size-limit nodes=N` / `--size-limit calls=N`.\n\n"
         "  # before\n  a: {op: network, spec: half.yaml}\n  b: {op: network, spec: half.yaml}   # in every level\n\n"
         "  # after\n  each: {op: map, over: \"${inputs.parts}\", spec: half.yaml, as: part}"),
    Code("E316", "subspec-too-deep",
         "sub-specs nest more levels deep than the limit (default 32)",
         "Each level of `network` inside `network` is loaded, checked and inlined in turn; a chain of "
         "hundreds of levels is a mistake or an attack, and past about 100 levels Python's stack would "
         "overflow.",
         "Flatten the chain, or raise the limit with `--size-limit depth=N` (at most 100).\n\n"
         "  # before (step1.yaml runs step2.yaml, which runs step3.yaml, ... 40 levels)\n"
         "  step: {op: network, spec: step2.yaml}\n\n"
         "  # after (the steps as nodes of one spec)\n"
         "  step2: {op: generate, model: w, prompt: \"{{ inputs.question }}\"}"),
    Code("E320", "debate-judge",
         "debate `then: judge` without a `judge:` model, or `judge:` without `then: judge`",
         "A debate ends with a vote over its last round, or with a judge model reading it; a judge needs a "
         "model, and a model given for a vote would never be called.",
         "Name the judge with then: judge, or drop it for a vote.\n\n"
         "  # before\n  d: {op: debate, agents: [a, b], question: q, then: judge}\n\n"
         "  # after\n  d: {op: debate, agents: [a, b], question: q, then: judge, judge: j}"),
    Code("E321", "sequential-verify-needs-first",
         "verify `order: sequential` with `then:` other than `first`",
         "Sequential verification stops at the first accepted candidate; a vote over the accepted ones needs "
         "every verdict, which only the parallel order collects.",
         "Use then: first with order: sequential, or keep order: parallel.\n\n"
         "  # before\n  v: {op: verify, model: m, question: q, candidates: c, then: vote, order: sequential}\n\n"
         "  # after\n  v: {op: verify, model: m, question: q, candidates: c, then: first, order: sequential}"),
    Code("E322", "race-models",
         "race with fewer than two `models`",
         "A race sends the same request to several bindings and keeps the first answer; with one binding "
         "there is nothing to race.",
         "List two or more bindings, or use generate.\n\n"
         "  # before\n  r: {op: race, models: [fast], prompt: hi}\n\n"
         "  # after\n  r: {op: race, models: [fast, backup], prompt: hi}"),
    Code("E330", "critiques-not-aligned",
         "`critiques:` from a critic (or a rank's `top_critiques`) beside candidates they were not written for",
         "A critique is aligned with the candidate list its critic read (Archon's rule: a critic feeds the "
         "ranker or fuser of the same candidates); beside another list, each candidate would be shown "
         "another one's critique.",
         "Give the node the critic's own `candidates` (or, after a rank, its `top` with its `top_critiques`).\n\n"
         "  # before\n  f: {op: fuse, model: m, question: q, candidates: \"${r.top}\", critiques: \"${c.critiques}\"}\n\n"
         "  # after\n  f: {op: fuse, model: m, question: q, candidates: \"${r.top}\", critiques: \"${r.top_critiques}\"}"),
    # -- E4xx: models and providers ---------------------------------------------------------------------
    Code("E401", "undefined-model",
         "undefined model name (in `model`, `models`, `prover`, `verifier`)",
         "Nodes name a model binding declared under `models:`; an undeclared name has no provider to call.",
         "Declare the model under `models:`, or use a declared name (see the suggestion).\n\n"
         "  # before\n  models: {judge: {provider: sim}}\n  # ...\n  model: jduge\n\n"
         "  # after\n  models: {judge: {provider: sim}}\n  # ...\n  model: judge"),
    Code("E402", "unknown-provider",
         "unknown provider",
         "`provider:` picks the client that makes the calls; Ember has no provider of that name (built-in, "
         "registered, or from an installed `ember.providers` plugin).",
         "Use a known provider (openai, anthropic, gemini, local, sim) or install the plugin.\n\n"
         "  # before\n  m: {provider: antropic, model: claude-haiku-4-5}\n\n"
         "  # after\n  m: {provider: anthropic, model: claude-haiku-4-5}"),
    Code("E403", "bad-model-param",
         "a `${params.X}` in a model binding resolves to a value of the wrong type or range",
         "A binding's numbers (temperature, max_tokens, top_p, ...) may come from params, but the param's "
         "value must still be a number in the field's range.",
         "Give the param a value of the right type and range.\n\n"
         "  # before\n  params: {temp: hot}\n  models: {m: {provider: sim, temperature: \"${params.temp}\"}}\n\n"
         "  # after\n  params: {temp: 0.7}\n  models: {m: {provider: sim, temperature: \"${params.temp}\"}}"),
    Code("E404", "unknown-sim-node",
         "a per-node sim field names a node the spec does not have",
         "A sim field (`accuracy`, `judge_accuracy`, ...) may be a mapping from node id to value, with an "
         "optional `default`, so one model can be good at one stage and bad at another; a key that is not a "
         "node of the spec applies to nothing (usually a typo).",
         "Use the node's id, or `default` for every other node.\n\n"
         "  # before\n  models: {m: {provider: sim, accuracy: {loacte: 0.9, default: 0.5}}}\n\n"
         "  # after\n  models: {m: {provider: sim, accuracy: {locate: 0.9, default: 0.5}}}"),
    # -- warnings ---------------------------------------------------------------------------------------
    Code("W201", "unused-node",
         "node that no output depends on (it will be pruned)",
         "No output reads the node, directly or through other nodes, so the `prune` pass removes it: it never "
         "runs. Usually a forgotten output or a reference to the wrong node.",
         "Read it from an output (or from a node an output reads), or delete it.\n\n"
         "  # before\n  nodes:\n    draft: {op: generate, model: m, prompt: hi}\n"
         "    final: {op: generate, model: m, prompt: hi}\n  outputs: {answer: \"${final.answer}\"}\n\n"
         "  # after\n  nodes:\n    draft: {op: generate, model: m, prompt: hi}\n"
         "    final: {op: generate, model: m, prompt: \"Improve: {{ draft.text }}\"}\n"
         "  outputs: {answer: \"${final.answer}\"}",
         severity="warning"),
    Code("W202", "deprecated-field",
         "a field that still works but has a new name",
         "The old name is kept so that existing specs keep working, but it will go away, and the new name says "
         "what the field means: `budget.max_tokens` is a total over all calls, not the per-call `max_tokens` of "
         "a model binding.",
         "Rename the field.\n\n  # before\n  budget: {max_tokens: 100000}\n\n"
         "  # after\n  budget: {max_total_tokens: 100000}",
         severity="warning"),
    # -- internal ---------------------------------------------------------------------------------------
    Code("E999", "internal-error",
         "internal error (a bug in Ember; validation of other files continues)",
         "Validating this file raised an unexpected exception inside Ember. The file may or may not be valid; "
         "the other files were still validated.",
         "Please report it with the file (or a reduced copy) and the output of `ember --debug validate FILE`. "
         "Meanwhile, simplifying the part of the file the message points to may avoid it."),
)

CODES: Mapping[str, Code] = MappingProxyType({c.code: c for c in _ALL})


def _check_registry() -> None:
    names = [c.name for c in _ALL]
    problems = ["a code is defined twice"] if len(CODES) != len(_ALL) else []
    problems += ["a name is used twice"] if len(set(names)) != len(names) else []
    for c in _ALL:
        if not (_CODE_RE.match(c.code) and _NAME_RE.match(c.name)):
            problems.append(f"{c.code} {c.name}: code is [EW]NNN, name is kebab-case")
        if c.severity != ("warning" if c.code.startswith("W") else "error"):
            problems.append(f"{c.code}: E codes are errors, W codes warnings")
        if not (c.summary and c.why and c.fix):
            problems.append(f"{c.code}: summary, why and fix are required")
    if problems:
        raise RuntimeError("ember_compiler/spec/codes.py: " + "; ".join(problems))


_check_registry()


def all_codes() -> list[Code]:
    """Every code, errors first then warnings, in numeric order."""
    return sorted(_ALL, key=lambda c: (c.code[0] != "E", c.code))


def lookup(code_or_name: str) -> Code:
    """The entry for `E201`, `e201` or `unknown-node`.

    Raises:
        UsageError: no such code or name (with a did-you-mean hint when one is close).
    """
    key = str(code_or_name).strip()
    found = CODES.get(key.upper())
    if found is None:
        found = next((c for c in _ALL if c.name == key.lower()), None)
    if found is not None:
        return found
    options = [*CODES, *(c.name for c in _ALL)]
    close = difflib.get_close_matches(key.upper() if _looks_like_code(key) else key.lower(), options, n=1, cutoff=0.6)
    if close:
        entry = CODES.get(close[0]) or next(c for c in _ALL if c.name == close[0])
        hint = f"did you mean '{entry.title}'?"
    else:
        hint = "`ember explain --all` lists every code"
    raise UsageError(f"unknown diagnostic code '{key}'; {hint}")


def _looks_like_code(text: str) -> bool:
    return bool(re.match(r"^[EWew]\d", text))


def explain_text(code_or_name: str) -> str:
    """What `ember explain CODE` prints: title, severity and summary, why, and how to fix it.

    Raises:
        UsageError: unknown code (see `lookup`).
    """
    c = lookup(code_or_name)
    return (f"{c.title} ({c.severity})\n\n{c.summary}\n\n"
            f"Why is this a problem?\n{_indent(c.why)}\n\n"
            f"How to fix it\n{_indent(c.fix)}\n")


def _indent(text: str, width: int = 100) -> str:
    """Indent by two; prose paragraphs are wrapped, indented ones (snippets) kept as they are."""
    out = []
    for para in text.split("\n\n"):
        if para.startswith(" "):
            out.append("\n".join("  " + line for line in para.splitlines()))
        else:
            out.append(textwrap.fill(para, width, initial_indent="  ", subsequent_indent="  "))
    return "\n\n".join(out)


def codes_markdown() -> str:
    """The Markdown table of docs/diagnostics.md: code, name, severity and summary."""
    rows = ["| code | name | severity | summary |", "| --- | --- | --- | --- |"]
    for c in all_codes():
        summary = c.summary.replace("|", "\\|")
        rows.append(f"| `{c.code}` | `{c.name}` | {c.severity} | {summary} |")
    return "\n".join(rows) + "\n"
