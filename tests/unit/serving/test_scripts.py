"""Every `.lua` file ships beside the module that runs it and is run through one `Script`."""

from pathlib import Path

import streams
from streams.ranked import bandit_store, feedback_store, hydrator, served_outcomes, served_recorder
from streams.serving import scripts, view
from streams.timelines import cache

MODULES = (bandit_store, feedback_store, hydrator, served_outcomes, served_recorder, view, cache)
ROOT = Path(streams.__file__).parent


def test_every_lua_file_is_a_script_of_the_module_beside_it() -> None:
    named = {
        script.name: module
        for module in MODULES
        for script in vars(module).values()
        if isinstance(script, scripts.Script)
    }
    files = {
        f"streams.{path.parent.relative_to(ROOT).as_posix().replace('/', '.')}/{path.name}"
        for path in ROOT.rglob("*.lua")
    }
    assert set(named) == files
    for name, module in named.items():
        assert name.split("/")[0] == module.__name__.rpartition(".")[0]
