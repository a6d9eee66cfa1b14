"""The booth assistant: answers grounded in what staff published.

- `passages`: one short passage per published record (plus its facts), built from the showcase's content models.
- `index` (services): the passages stored with a lexical index (SQLite FTS5 / PostgreSQL full text) and a dense
  vector each; upsert, remove, rebuild.
- `retrieval` (selectors): lexical and dense search fused by reciprocal rank; the embedding model is loaded once per
  worker process (`embedding`), and the query is embedded there, never in the web process.
- `grounding`: the prompt the model sees (the conference's core facts in the opening turn, the passages beside the
  question), the "I don't know" answer, and the sources saved with a reply.
- `figures`: every number, date, time and booth code in a reply checked against its sources.
- `signals` / `tasks`: a published save reaches the index in a Celery task on the `default` queue once the
  transaction commits; unpublishing or deleting removes the passage at once.
- `eval_booth` (`python -m demo_engine.eval_booth`): the measured figures.
"""
