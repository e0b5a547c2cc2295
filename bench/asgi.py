"""The site as an ASGI app for `uvicorn --factory --workers N` (bench/serve.py's worker
comparison): the configuration `datasette_args` gives, built in each worker process.

    POSTS_BENCH_DB=posts.db POSTS_BENCH_INSPECT=inspect.json \
        python -m uvicorn --app-dir bench --factory asgi:app --workers 2 --port 8001
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from datasette.app import Datasette

from postsdb.serve import METADATA, PLUGINS, SETTINGS, TEMPLATES


def app():
    inspect = Path(os.environ["POSTS_BENCH_INSPECT"])
    datasette = Datasette(
        immutables=[os.environ["POSTS_BENCH_DB"]],
        inspect_data=json.loads(inspect.read_text(encoding="utf-8")),
        metadata=yaml.safe_load(METADATA.read_text(encoding="utf-8")),
        plugins_dir=str(PLUGINS),
        template_dir=str(TEMPLATES),
        settings=SETTINGS,
        cors=True,
    )
    return datasette.app()
