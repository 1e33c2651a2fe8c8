"""A manifest: read with line numbers, expanded into concrete jobs, checked.

    types.py        the data: Pipeline, Job, narrations, dialogue lines, audio sources
    yaml_source.py  safe YAML with a line and column for every value; fastyaml.py reads
                    block-style manifests without libyaml (the same values, or it declines);
                    scalars.py plain scalars under the YAML 1.2 core schema, for both
    load.py         read → shape check → accounts → expand → checks, every problem at once
    expand.py       templates to jobs (defaults, matrix, variants); expansion.py what its
                    steps share; programmes.py narrations and dialogues
    checks.py       ids, inputs against model schemas, dependencies; outputs.py every file
                    a job writes; filenames.py what makes a path usable
    approved.py, postprocess.py   the `approved:` template and `postprocess:` declarations
"""
