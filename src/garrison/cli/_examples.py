"""One example line per command, shown at the end of its ``--help``.

Keys are command paths as typed after ``garrison``; each value is a command line that works
against a workspace set by ``-w`` or ``$GARRISON_WORKSPACE``. tests/cli/test_cli_polish.py
checks that every registered command has one and that each parses (its command exists, and so
does every option it uses).
"""

from __future__ import annotations

__all__ = ["EXAMPLES"]

EXAMPLES: dict[str, str] = {
    "init": "garrison init /srv/garrison --system-high 'SECRET//NOFORN'",
    "migrate": "garrison -w /srv/garrison migrate",
    "doctor": "garrison doctor -w /srv/garrison --json",
    "parse": "garrison parse memo.docx brief.pdf --system-high 'SECRET//NOFORN' --json",
    "ingest": "garrison ingest /data/inbox --default-marking 'CONFIDENTIAL' --strict",
    "run": "garrison run pipeline.yaml --workers 4",
    "lineage": "garrison lineage 3f9a2c81 --as alice",
    "verify": "garrison verify export/ --trusted-key site.pub",
    "search": "garrison search 'fuel depot' --as alice --json",
    "ask": "garrison ask 'When does the convoy leave?' --as alice --k 5",
    "serve": "garrison serve --host 127.0.0.1 --port 8600",
    "pipeline show": "garrison pipeline show pipeline.yaml",
    "chunks ls": "garrison chunks ls --doc 3f9a2c81 --as alice",
    "pii scan": "garrison pii scan 'Call 555-0100 or mail ops@example.mil'",
    "dedup report": "garrison dedup report --json",
    "dataset create": "garrison dataset create memos --kind chunks --max-marking SECRET "
    "--field title,section_path",
    "dataset ls": "garrison dataset ls --json",
    "dataset show": "garrison dataset show memos@1a2b3c",
    "dataset diff": "garrison dataset diff memos@1a2b3c memos@4d5e6f",
    "dataset card": "garrison dataset card memos --html card.html",
    "dataset export": "garrison dataset export memos --format parquet --out out/memos "
    "--with-embeddings",
    "dataset rm": "garrison dataset rm memos@1a2b3c",
    "key export": "garrison key export --out site.pub",
    "model ls": "garrison model ls --limit 20",
    "model show": "garrison model show minilm@2c4e",
    "model rm": "garrison model rm minilm@2c4e --reason 'superseded'",
    "model card": "garrison model card minilm --format markdown --out card.md",
    "model export": "garrison model export minilm --out minilm.bundle",
    "model import": "garrison model import minilm.bundle --trusted-key site.pub",
    "model add-endpoint": "garrison model add-endpoint llm --base-url https://llm.local/v1 "
    "--model llama --accredited SECRET",
    "model add-local": "garrison model add-local tiny --path /models/tiny --marking UNCLASSIFIED",
    "model generate": "garrison model generate llm --prompt 'Summarize the memo' --max-tokens 200",
    "model optimize": "garrison model optimize minilm --name minilm-onnx",
    "model predict": "garrison model predict topics --text 'Fuel moves Thursday'",
    "model train embedder": "garrison model train embedder domain-embed --base minilm "
    "--pairs pairs",
    "model train classifier": "garrison model train classifier topics --dataset labelled "
    "--text-field text --label-field label",
    "conversations ls": "garrison conversations ls --as alice",
    "conversations show": "garrison conversations show 7d1e2a --as alice",
    "conversations rm": "garrison conversations rm 7d1e2a --as alice",
    "label import-predictions": "garrison label import-predictions topics --classifier topics",
    "label next": "garrison label next topics --as ann",
    "label submit": "garrison label submit 5c2b9e --value logistics --as ann",
    "label skip": "garrison label skip 5c2b9e --reason 'unclear' --as ann",
    "label project create": "garrison label project create topics --dataset memos "
    "--type classification --classes logistics,personnel",
    "label project ls": "garrison label project ls",
    "label project show": "garrison label project show topics",
    "label project stats": "garrison label project stats topics --json",
    "label project export": "garrison label project export topics --out labels/",
    "label review next": "garrison label review next topics --as rev",
    "label review accept": "garrison label review accept 9e8d7c --as rev",
    "label review fix": "garrison label review fix 9e8d7c --value personnel --as rev",
    "label review reject": "garrison label review reject 9e8d7c --reason 'wrong span' --as rev",
    "token create": "garrison token create alice --expires-in 30",
    "token list": "garrison token list",
    "token revoke": "garrison token revoke tok_1a2b3c",
    "eval run": "garrison eval run qa-suite --system assistant --subject alice",
    "eval ls": "garrison eval ls --json",
    "eval show": "garrison eval show 4b3a21 --items",
    "eval report": "garrison eval report 4b3a21 --format html --out report.html",
    "eval compare": "garrison eval compare 4b3a21 9f8e7d --metric accuracy",
    "eval suite create": "garrison eval suite create qa-suite --from-jsonl items.jsonl "
    "--marking SECRET",
    "eval suite generate": "garrison eval suite generate qa-gen --from-docs --limit 50",
    "eval suite ls": "garrison eval suite ls",
    "eval suite show": "garrison eval suite show qa-suite --items --limit 10",
    "eval suite export": "garrison eval suite export qa-suite --out suite/",
    "docs ls": "garrison docs ls --status parsed --as alice",
    "docs show": "garrison docs show 3f9a2c81 --elements",
    "docs findings": "garrison docs findings --kind under-marked --unresolved",
    "docs resolve": "garrison docs resolve 8c7b6a --note 'Re-marked by the author'",
    "docs rm": "garrison docs rm 3f9a2c81 --reason 'Ingested by mistake'",
    "docs reparse": "garrison docs reparse --workers 2",
    "jobs ls": "garrison jobs ls --limit 10",
    "jobs show": "garrison jobs show 6a5b4c",
    "marking check": "garrison marking check 'SECRET//NOFORN'",
    "marking rollup": "garrison marking rollup '(U)' '(S//NF)'",
    "marking expr": "garrison marking expr 'SECRET//REL TO USA, GBR'",
    "marking downgrade": "garrison marking downgrade 3f9a2c81 --to CONFIDENTIAL "
    "--reason 'Declassified by OCA'",
    "access eval": "garrison access eval 'CLS:S&CTRY:USA' --auths CLS:S,CTRY:USA",
    "user add": "garrison user add alice --clearance S --role viewer",
    "user update": "garrison user update alice --clearance TS --sci SI",
    "user show": "garrison user show alice",
    "user list": "garrison user list --limit 50",
    "registry add": "garrison registry add sci XK --description 'Site compartment'",
    "registry list": "garrison registry list --json",
    "registry remove": "garrison registry remove accm 'TEA LEAF'",
    "audit verify": "garrison audit verify --against checkpoint.json",
    "audit checkpoint": "garrison audit checkpoint --out checkpoint.json",
    "audit tail": "garrison audit tail --limit 20",
    "redteam leakage": "garrison redteam leakage --system assistant --seed 1 --html leak.html",
    "redteam injection": "garrison redteam injection --system assistant --subject alice",
    "redteam pii": "garrison redteam pii --system assistant --subject alice --per-type 2",
    "redteam probes": "garrison redteam probes --system assistant --subject alice",
}
