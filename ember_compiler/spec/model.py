"""The pydantic model of a spec (DESIGN §2, contract) — the single source of the JSON Schema.

Fields that may hold a reference (`${inputs.x}`, `${node.port}`, `${params.x}`) are typed `Any` or
`X | Ref`; references are resolved by the compiler, not here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$"
REF_PATTERN = r"^\$\{\s*[^{}\s]+\s*\}$"

Ref = Annotated[str, Field(pattern=REF_PATTERN, description="A reference such as ${params.n}.")]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
TypeName = Literal["string", "number", "integer", "boolean", "array", "object"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputDecl(_Strict):
    """A network input with its type, an optional description and an optional default."""

    type: TypeName = "string"
    description: str | None = None
    default: Any = None


class Limits(_Strict):
    concurrency: int | None = Field(None, ge=1, description="Calls in flight at once.")
    rpm: float | None = Field(None, gt=0, description="Requests per minute.")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute.")


class Price(_Strict):
    input_per_mtok: float = Field(..., ge=0, description="USD per million input tokens.")
    output_per_mtok: float = Field(..., ge=0, description="USD per million output tokens.")
    cached_input_per_mtok: float | None = Field(
        None, ge=0, description="USD per million input tokens read from the prompt cache (default: input price).")


class Budget(_Strict):
    """Spending limits for one `ember run` or a whole `ember eval` (the CLI's --max-* flags override)."""

    max_cost_usd: float | None = Field(None, ge=0, description="Stop before the recorded spend could exceed this (USD).")
    max_calls: int | None = Field(None, ge=0, description="Stop before more than this many model calls (samples).")
    max_total_tokens: int | None = Field(
        None, ge=0, description="Stop before more than this many tokens (input + output, over all calls).")
    max_tokens: int | None = Field(None, ge=0, description="Deprecated alias of max_total_tokens.",
                                   json_schema_extra={"deprecated": True})

    @model_validator(mode="after")
    def _legacy_max_tokens(self) -> Budget:
        # `max_tokens` (deprecated: it reads like a model's per-call max_tokens) moves to max_total_tokens
        if self.max_tokens is not None:
            if self.max_total_tokens is None:
                self.max_total_tokens = self.max_tokens
            self.max_tokens = None
        return self


class ModelBinding(_Strict):
    """A named model that nodes refer to. Sim-only fields are ignored by other providers."""

    provider: str = Field(..., description="openai, anthropic, gemini, local, sim, or a registered plugin.")
    model: str | None = None
    temperature: Annotated[float, Field(ge=0)] | Ref | None = None
    max_tokens: Annotated[int, Field(ge=1)] | Ref | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | Ref | None = None
    seed: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    limits: Limits | None = None
    timeout_s: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    price: Price | None = None
    structured_output: bool | None = Field(
        None, description="Ask judge/select/verify for JSON through the API's schema support (default: on for "
                          "openai, anthropic, gemini and plugins; off for local). Set false for OpenAI-compatible "
                          "servers without response_format json_schema.")
    # sim provider (DESIGN §3)
    accuracy: Annotated[float, Field(ge=0, le=1)] | Ref | None = None
    choices: list[str] | None = None
    wrong_weights: list[float] | None = None
    tpr: float | None = Field(None, ge=0, le=1)
    fpr: float | None = Field(None, ge=0, le=1)
    judge_accuracy: float | None = Field(None, ge=0, le=1)
    latency_ms: Annotated[float, Field(ge=0)] | Ref | None = None


class _Node(_Strict):
    description: str | None = None
    when: Any = Field(
        None, description="Jinja expression without braces, or one reference; false skips the node."
    )


def _with_vars() -> Any:
    return Field(default_factory=dict, alias="with",
                 description="Template variables: name -> value (a literal or a reference), read as {{ name }}.")


class GenerateNode(_Node):
    op: Literal["generate"]
    model: str
    prompt: str
    system: str | None = None
    extract: str | None = Field(None, description="Regex with one group for the answer.")
    with_: dict[Name, Any] = _with_vars()


class EnsembleNode(_Node):
    op: Literal["ensemble"]
    model: str | None = None
    models: list[str] | None = None
    n: Annotated[int, Field(ge=1)] | Ref = Field(1, description="Samples per model.")
    prompt: str
    system: str | None = None
    extract: str | None = None
    with_: dict[Name, Any] = _with_vars()


class VoteNode(_Node):
    op: Literal["vote"]
    candidates: Any
    extract: str | None = None
    normalize: Literal["none", "strip", "lower", "number"] = "strip"


class JudgeNode(_Node):
    op: Literal["judge"]
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None
    with_: dict[Name, Any] = _with_vars()


class SelectNode(_Node):
    op: Literal["select"]
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None
    with_: dict[Name, Any] = _with_vars()


class VerifyNode(_Node):
    op: Literal["verify"]
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None
    then: Literal["first", "vote"] = "first"
    fallback: Literal["first", "vote", "none"] = "first"
    with_: dict[Name, Any] = _with_vars()


class RefineNode(_Node):
    op: Literal["refine"]
    prover: str
    verifier: str
    question: Any
    max_rounds: Annotated[int, Field(ge=1)] | Ref = 3


class FirstNode(_Node):
    op: Literal["first"]
    candidates: Any


class NetworkNode(_Node):
    op: Literal["network"]
    spec: str = Field(..., description="Path of the sub-spec, relative to this file.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


CALL_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|[A-Za-z0-9_][A-Za-z0-9_.\-]*)$"


class PythonNode(_Node):
    """A custom operator (an `ember_compiler.Operator` subclass); its ports are its Output fields."""

    op: Literal["python"]
    call: str = Field(..., pattern=CALL_PATTERN, description=(
        "package.module:Name of an Operator class, or a short name registered in the ember.operators "
        "entry-point group. Imported only when running (or by `ember validate --import`)."))
    with_: dict[Name, Any] = Field(default_factory=dict, alias="with", description="The operator's inputs.")
    init: dict[Name, Any] = Field(default_factory=dict, description="Constructor arguments (static).")


class MapNode(_Node):
    """Run a sub-spec or an inline node once per item of a list, all items in parallel."""

    op: Literal["map"]
    over: Any = Field(..., description="The list to map over (usually a reference).")
    as_: Name = Field("item", alias="as", description="Name of the item: ${inputs.NAME} inside the "
                      "inline node, or the sub-spec input that receives it.")
    spec: str | None = Field(None, description="Path of the sub-spec run per item, relative to this file.")
    node: Node | None = Field(None, description="An inline node run per item (not network).")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with",
                                  description="Other inputs of the sub-spec (same for every item).")


Node = Annotated[
    GenerateNode | EnsembleNode | VoteNode | JudgeNode | SelectNode | VerifyNode | RefineNode | FirstNode
    | NetworkNode | PythonNode | MapNode,
    Field(discriminator="op"),
]
MapNode.model_rebuild()

NODE_TYPES: dict[str, type[_Node]] = {
    t.model_fields["op"].annotation.__args__[0]: t  # type: ignore[union-attr]
    for t in (GenerateNode, EnsembleNode, VoteNode, JudgeNode, SelectNode, VerifyNode, RefineNode,
              FirstNode, NetworkNode, PythonNode, MapNode)
}


class Spec(_Strict):
    """A Network of Networks."""

    schema_: str | None = Field(None, alias="$schema")
    ember: Literal[1] = Field(..., description="Spec format version.")
    name: Name
    description: str | None = None
    inputs: dict[Name, TypeName | InputDecl] = Field(default_factory=dict)
    models: dict[Name, ModelBinding] = Field(default_factory=dict)
    params: dict[Name, Any] = Field(default_factory=dict)
    nodes: dict[Name, Node]
    outputs: dict[Name, str] = Field(..., min_length=1)
    budget: Budget | None = None

    def input_decls(self) -> dict[str, InputDecl]:
        return {k: v if isinstance(v, InputDecl) else InputDecl(type=v) for k, v in self.inputs.items()}
