"""One job protocol for every process frameduel starts to run framework code.

    parent                                               child (spawned, or forked from a zygote)
    spawn_job(kind, payload, timeout_s, workdir, launcher) --> python -m frameduel.jobs.entry KIND RESULT
      timeout -> "timeout"; no result file -> the death           looks KIND up in JOB_KINDS, runs its
      cause (signal, exit code, stderr's last line), or "oom"     *_in_worker(payload) and writes its
      when the cgroup's OOM killer struck; else the Envelope      Envelope, written then renamed

Every kind returns one Envelope (envelope.py): a status from one vocabulary (spec.STATUSES), the error's
key line, its data, and the files it wrote. Process plumbing lives here (process.py: running, killing,
the fork servers; launch.py: dying with the parent; cores.py), none of it in a job's module. Layer: below
the tracks (runner, parity, accuracy, export), above the frameworks; it names job modules only as strings.
"""
