"""Pytrees: operators and networks flatten into leaves (their static configuration) and rebuild."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ember_compiler import (
    Model,
    jit,
    ops,
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_leaves_with_path,
    tree_map,
    tree_structure,
    tree_unflatten,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "sdk"))
import networks  # noqa: E402


def test_containers_flatten_and_rebuild():
    tree = {"b": [1, (2, 3)], "a": None}
    leaves, treedef = tree_flatten(tree)
    assert leaves == [None, 1, 2, 3]  # dict keys sorted; None is a leaf (a value of configuration)
    assert tree_unflatten(treedef, [0, 10, 20, 30]) == {"a": 0, "b": [10, (20, 30)]}
    assert treedef.num_leaves == 4 and repr(treedef) == "dict(*, list(*, tuple(*, *)))"
    with pytest.raises(ValueError, match="has 4 leaves, got 3"):
        tree_unflatten(treedef, [1, 2, 3])


def test_an_operator_flattens_into_its_constructor_arguments():
    vote = ops.Judge(model=Model(provider="sim"), prompt="p")
    assert tree_leaves(vote) == [Model(provider="sim"), "p"]
    assert tree_leaves_with_path({"judge": vote})[0][0] == "['judge'].model"
    rebuilt = tree_unflatten(tree_structure(vote), [Model(provider="sim", accuracy=0.9), "q"])
    assert isinstance(rebuilt, ops.Judge) and rebuilt.model.binding["accuracy"] == 0.9 and rebuilt.prompt == "q"


def test_every_model_of_a_network_swaps_in_one_call():
    net = networks.MixtureOfAgents()
    models = [leaf for leaf in tree_leaves(net) if isinstance(leaf, Model)]
    assert len(models) >= 2

    def cheaper(leaf):
        return leaf.replace(provider="sim", accuracy=0.5) if isinstance(leaf, Model) else leaf

    swapped = tree_map(cheaper, net)
    assert type(swapped) is type(net) and swapped is not net
    bindings = jit(swapped).plan.models
    assert bindings and all(b["accuracy"] == 0.5 for b in bindings.values())
    assert any(b.get("accuracy") != 0.5 for b in jit(net).plan.models.values())  # the original is unchanged
    # the rebuilt network runs; its structure (and paths) are the original's
    assert tree_structure(swapped) == tree_structure(net)
    assert [p for p, _ in tree_leaves_with_path(swapped)] == [p for p, _ in tree_leaves_with_path(net)]
    assert swapped(question="q").answer in "ABCD"


def test_tree_map_over_two_trees_checks_structure():
    a = networks.SelfConsistency(n=3)
    b = networks.SelfConsistency(n=7)
    assert tree_map(lambda x, y: y, a, b).samples.n == 7
    assert jit(tree_map(lambda x: x, a)).plan.hash == jit(a).plan.hash  # identity keeps the plan
    with pytest.raises(ValueError, match="structure"):
        tree_map(lambda x, y: y, a, {"n": 7})


def test_register_pytree_node_for_other_classes():
    class Pair:
        def __init__(self, left, right):
            self.left, self.right = left, right

    register_pytree_node(Pair, lambda p: ([p.left, p.right], None), lambda aux, ch: Pair(*ch))
    doubled = tree_map(lambda x: x * 2, [Pair(1, Pair(2, 3))])
    assert (doubled[0].left, doubled[0].right.left, doubled[0].right.right) == (2, 4, 6)
