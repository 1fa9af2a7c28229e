"""The Python operator SDK (DESIGN §1): operators, networks, ``jit``, ``vmap``, pytrees.

Public names are re-exported from ``ember_compiler``; see docs/sdk.md.
"""

from ember_compiler.sdk import nodes as _nodes  # noqa: F401  (registers the python node runner)
from ember_compiler.sdk import ops as ops
from ember_compiler.sdk.engine import Session as Session
from ember_compiler.sdk.engine import session as session
from ember_compiler.sdk.jit import Jitted as Jitted
from ember_compiler.sdk.jit import RunOutput as RunOutput
from ember_compiler.sdk.jit import jit as jit
from ember_compiler.sdk.loaded import SpecOperator as SpecOperator
from ember_compiler.sdk.loaded import load as load
from ember_compiler.sdk.model import Model as Model
from ember_compiler.sdk.operator import Network as Network
from ember_compiler.sdk.operator import Operator as Operator
from ember_compiler.sdk.operator import OperatorError as OperatorError
from ember_compiler.sdk.pytree import TreeDef as TreeDef
from ember_compiler.sdk.pytree import register_pytree_node as register_pytree_node
from ember_compiler.sdk.pytree import tree_flatten as tree_flatten
from ember_compiler.sdk.pytree import tree_leaves as tree_leaves
from ember_compiler.sdk.pytree import tree_leaves_with_path as tree_leaves_with_path
from ember_compiler.sdk.pytree import tree_map as tree_map
from ember_compiler.sdk.pytree import tree_structure as tree_structure
from ember_compiler.sdk.pytree import tree_unflatten as tree_unflatten
from ember_compiler.sdk.trace import NotTraceable as NotTraceable
from ember_compiler.sdk.trace import when as when
from ember_compiler.sdk.vmap import Batched as Batched
from ember_compiler.sdk.vmap import BatchOutput as BatchOutput
from ember_compiler.sdk.vmap import vmap as vmap

__all__ = [
    "BatchOutput", "Batched", "Jitted", "Model", "Network", "NotTraceable", "Operator", "OperatorError",
    "RunOutput", "Session", "SpecOperator", "TreeDef", "jit", "load", "ops", "register_pytree_node", "session",
    "tree_flatten", "tree_leaves", "tree_leaves_with_path", "tree_map", "tree_structure", "tree_unflatten",
    "vmap", "when",
]
