"""The code job queue: the reward server puts programs on a Redis stream, `reward-server worker`s run them.

Layout (every key starts with `REWARD_QUEUE_PREFIX`, `iarl` by default; see `protocol.QueueKeys`):

- `iarl:jobs`: a stream of jobs, one per distinct program of a group, read by the consumer group
  `iarl:workers`. A job names its problem, its program, the stream to answer on and its run budget.
- `iarl:problem:<sha256>`: a group's normalized reference (tests can be megabytes), stored once per
  group with a TTL; workers keep a few in memory.
- `iarl:replies:<server id>`: each server process reads its own reply stream: "taken" notices and verdicts.
- `iarl:workers:alive` (sorted set, name -> last heartbeat) and `iarl:workers:slots` (hash, name -> jobs it
  runs at once): who is alive, and the capacity that fair sharing divides.
- `iarl:requests` (sorted set, request -> last refresh by its server) and `iarl:requests:jobs` (hash,
  request -> jobs it holds or may add): the requests in flight, for fair shares and the depth limit.

The clock: a job's run clock starts when a worker takes it, never while it waits. The worker tells the
job's server ("taken"); the server then waits for the verdict up to the job's budget (its tests' wall-clock
limits, capped by REWARD_CODE_MAX_RUN_S, plus a margin) and the time a take-over needs. While a job waits
for a worker nothing expires it, as long as some worker is alive; once no worker has been alive for
REWARD_QUEUE_MAX_WAIT_S, the waiting jobs are answered `error` and taken off the stream.

Back-pressure: a request is admitted as a whole before any of it is enqueued (`admission`): its code
completions must fit under REWARD_QUEUE_MAX_DEPTH (all servers together), else 429 with Retry-After. Redis
unreachable or out of memory: 503 with Retry-After.

Fairness (`tracking.fair_share`): a request has at most its share of the live workers' slots (plus one spare)
queued or running; the rest of its jobs wait in its server. One request alone uses every worker; a new
request's jobs reach the stream at once and are taken as soon as slots free up, however large the others'
batches: round-robin between requests, not FIFO between jobs.

Delivery: a worker acknowledges (XACK) and deletes (XDEL) a job after its answer is on the reply stream.
While it runs a job a worker re-claims it every few seconds (a heartbeat that keeps its idle time low); a
worker killed mid-job stops doing so, and after `REWARD_QUEUE_CLAIM_AFTER_S` another worker takes the job
over with XAUTOCLAIM (and says "taken" again: the run clock restarts). A job that has taken down
`REWARD_QUEUE_MAX_DELIVERIES` workers is answered `error`. A job can thus run twice (a worker stalled rather
than died); the server keeps the first answer and drops the second, and the verdict is the same since
grading is deterministic up to timing. A job whose entry Redis lost (a restart without its append-only file,
a flush) is enqueued again by its server, which checks its jobs every few seconds.

Failures: nothing is ever `incorrect` because of the infrastructure. Redis unreachable or full when a request
arrives: 503 (nothing was graded); Redis full while requests are in flight: they are refused with 503 too
(their verdicts so far are cached). Redis unreachable while jobs are in flight: the server cannot see any
worker, so those jobs are `error` after REWARD_QUEUE_CLAIM_AFTER_S + REWARD_QUEUE_MAX_WAIT_S unless Redis
returns first. Server and workers reconnect by themselves when Redis returns.
"""
