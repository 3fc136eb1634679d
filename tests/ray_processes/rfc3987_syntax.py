"""Put first on the PYTHONPATH of the tests' Ray processes only: jsonschema (imported by every Ray
process through ray._private.runtime_env.plugin_schema_manager) imports this optional IRI-syntax
checker when it is installed, and building its grammar took 4.5 s of CPU per process here. On a
loaded 2-core machine that made Ray 2.60's raylet abort at start-up (it waits 15 s for the dashboard
agent's port file). jsonschema skips the checker when this import fails; nothing in Ray or this
package validates IRIs."""
raise ImportError("rfc3987_syntax is left out of the tests' Ray processes (see tests/ray_processes)")
