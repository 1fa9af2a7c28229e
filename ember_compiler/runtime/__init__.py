"""The runtime (layer 5): the mechanics a plan executes against — provider pool and gates (`pool`), the
attempt loop (`attempts`), retry policy, limits, budget, response cache, prices, spans and accounting
(`usage`), put together by `runtime.Runtime`. It runs no plan itself (that is `ember_compiler.runs`)."""
