"""The pydantic models of a spec (DESIGN §2, contract) — the single source of the JSON Schema.

The node models live with their ops (``ember_compiler/ops/<op>.py``); ``ember_compiler.ops.registry``
builds the full ``Spec`` from ``SpecBase`` and the registered ops.

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
    temperature: Annotated[float, Field(ge=0, le=2)] | Ref | None = None  # the APIs take 0–2 (Anthropic 0–1)
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
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = Field(
        None, description="openai: the body field that carries max_tokens (default: max_completion_tokens for "
                          "reasoning models and for models unknown to OpenAI's API, else max_tokens). Set it for an "
                          "OpenAI-compatible server that reads the other one.")
    n_limit: int | None = Field(
        None, ge=1, description="openai, gemini: samples one request may ask for (default: 128 for openai, 8 for "
                                "gemini); larger ensembles are split into several requests. 1: never send `n`.")
    # sim provider (DESIGN §3)
    accuracy: Annotated[float, Field(ge=0, le=1)] | Ref | None = None
    choices: list[str] | None = None
    wrong_weights: list[float] | None = None
    tpr: float | None = Field(None, ge=0, le=1)
    fpr: float | None = Field(None, ge=0, le=1)
    judge_accuracy: float | None = Field(None, ge=0, le=1)
    refusal_rate: float | None = Field(None, ge=0, le=1, description="sim: probability a sample is a refusal "
                                       "(no answer), independent of its correctness; default 0.")
    latency_ms: Annotated[float, Field(ge=0)] | Ref | None = None


class NodeBase(_Strict):
    """Fields every spec node has; each op's node model (``ember_compiler/ops/<op>.py``) extends it."""

    description: str | None = None
    when: Any = Field(
        None, description="Jinja expression without braces, or one reference; false skips the node."
    )


def with_vars() -> Any:
    return Field(default_factory=dict, alias="with",
                 description="Template variables: name -> value (a literal or a reference), read as {{ name }}.")


class SpecBase(_Strict):
    """A Network of Networks, but for the type of its nodes (the op registry builds ``Spec``)."""

    schema_: str | None = Field(None, alias="$schema")
    ember: Literal[1] = Field(..., description="Spec format version.")
    name: Name
    description: str | None = None
    inputs: dict[Name, TypeName | InputDecl] = Field(default_factory=dict)
    models: dict[Name, ModelBinding] = Field(default_factory=dict)
    params: dict[Name, Any] = Field(default_factory=dict)
    nodes: dict[Name, Any]
    outputs: dict[Name, str] = Field(..., min_length=1)
    budget: Budget | None = None

    def input_decls(self) -> dict[str, InputDecl]:
        return {k: v if isinstance(v, InputDecl) else InputDecl(type=v) for k, v in self.inputs.items()}
