"""The pydantic model of a spec (DESIGN §2, contract) — the single source of the JSON Schema.

Fields that may hold a reference (`${inputs.x}`, `${node.port}`, `${params.x}`) are typed `Any` or
`X | Ref`; references are resolved by the compiler, not here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class GenerateNode(_Node):
    op: Literal["generate"]
    model: str
    prompt: str
    system: str | None = None
    extract: str | None = Field(None, description="Regex with one group for the answer.")


class EnsembleNode(_Node):
    op: Literal["ensemble"]
    model: str | None = None
    models: list[str] | None = None
    n: Annotated[int, Field(ge=1)] | Ref = Field(1, description="Samples per model.")
    prompt: str
    system: str | None = None
    extract: str | None = None


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


class SelectNode(_Node):
    op: Literal["select"]
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None


class VerifyNode(_Node):
    op: Literal["verify"]
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None
    then: Literal["first", "vote"] = "first"
    fallback: Literal["first", "vote", "none"] = "first"


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


Node = Annotated[
    GenerateNode | EnsembleNode | VoteNode | JudgeNode | SelectNode | VerifyNode | RefineNode | FirstNode | NetworkNode,
    Field(discriminator="op"),
]

NODE_TYPES: dict[str, type[_Node]] = {
    t.model_fields["op"].annotation.__args__[0]: t  # type: ignore[union-attr]
    for t in (GenerateNode, EnsembleNode, VoteNode, JudgeNode, SelectNode, VerifyNode, RefineNode,
              FirstNode, NetworkNode)
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

    def input_decls(self) -> dict[str, InputDecl]:
        return {k: v if isinstance(v, InputDecl) else InputDecl(type=v) for k, v in self.inputs.items()}
