"""Red-team exercises: the seed's attacks on patchbrain as runnable, scored scenarios (`patchbrain redteam`).

`registry.scenarios()` lists them; `runner.run(scenarios, RunOptions())` runs each in its own scratch folder
and PATCHBRAIN_HOME and returns `ScenarioResult`s; `report.markdown(results)` writes the report.
"""
