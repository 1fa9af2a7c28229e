"""Regenerate `prices.json` from LiteLLM's MIT-licensed price list — a maintainer's script, not run by Ember.

    pip download --no-deps litellm -d /tmp/litellm      # the wheel only: never install or import it
    python ember_compiler/data/make_prices.py /tmp/litellm/litellm-*.whl

It reads `litellm/model_prices_and_context_window_backup.json` and the licence from the wheel with
zipfile, keeps the chat models of openai, anthropic and gemini with the fields Ember prices with
(USD per token) and the capability flags in `FLAGS`, and writes `prices.json` and `LICENSE-litellm.txt` next to this file.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

VENDORS = ("openai", "anthropic", "gemini")
FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "max_input_tokens": "max_input_tokens",
    "max_output_tokens": "max_output_tokens",
}
# capability facts the wire format needs (providers/capabilities.py), kept only where they say something
FLAGS = {
    "supports_reasoning": ("reasoning", True),  # OpenAI: `max_completion_tokens`, not `max_tokens`
    "supports_sampling_params": ("sampling_params", False),  # Anthropic: rejects temperature and top_p
}
_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


def trim(entry: dict) -> dict:
    out = {short: entry[key] for key, short in FIELDS.items() if entry.get(key) is not None}
    out.update({short: value for key, (short, value) in FLAGS.items() if entry.get(key) is value})
    # long-context tier: prompts above N tokens are billed at other rates (Gemini Pro, GPT-5.x, Claude 1M)
    for key in entry:
        m = _TIER.match(key)
        if m:
            k = m.group(1)
            out["tier_above_tokens"] = int(k) * 1000
            for src, short in (("input_cost_per_token", "input"), ("output_cost_per_token", "output"),
                               ("cache_read_input_token_cost", "cache_read")):
                value = entry.get(f"{src}_above_{k}k_tokens")
                if value is not None:
                    out[f"tier_{short}"] = value
            break
    return out


def main(wheel: str) -> None:
    here = Path(__file__).resolve().parent
    with zipfile.ZipFile(wheel) as z:
        data = json.loads(z.read("litellm/model_prices_and_context_window_backup.json"))
        licence = next(n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        (here / "LICENSE-litellm.txt").write_bytes(z.read(licence))
        version = licence.split("-")[1].split(".dist")[0]
    models: dict[str, dict[str, dict]] = {v: {} for v in VENDORS}
    for name, entry in sorted(data.items()):
        if not isinstance(entry, dict) or entry.get("mode") != "chat":
            continue
        vendor = entry.get("litellm_provider")
        if vendor not in VENDORS or entry.get("input_cost_per_token") is None:
            continue
        models[vendor][name.removeprefix(f"{vendor}/")] = trim(entry)
    doc = {
        "source": f"LiteLLM {version}, litellm/model_prices_and_context_window_backup.json "
                  "(https://github.com/BerriAI/litellm), chat models of openai, anthropic and gemini",
        "license": "MIT, Copyright (c) 2023 Berri AI — see LICENSE-litellm.txt",
        "snapshot_date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "units": "USD per token",
        "models": models,
    }
    (here / "prices.json").write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"{sum(len(m) for m in models.values())} models from LiteLLM {version}")


if __name__ == "__main__":
    main(sys.argv[1])
