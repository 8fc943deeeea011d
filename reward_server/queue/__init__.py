"""The code job queue: the reward server puts programs on a Redis stream, `reward-server worker`s run them.

Layout (every key starts with `REWARD_QUEUE_PREFIX`, `iarl` by default; see `protocol.QueueKeys`):

- `iarl:jobs`: a stream of jobs, one per distinct program of a group, read by the consumer group
  `iarl:workers`. A job names its problem, its program, the stream to answer on and its deadline.
- `iarl:problem:<sha256>`: a group's normalized reference (tests can be megabytes), stored once per
  group with a TTL; workers keep a few in memory.
- `iarl:replies:<server id>`: each server process reads its own reply stream and wakes the waiting request.
- `iarl:workers:alive`: a sorted set of worker names by last heartbeat (for error messages and /readyz).

Delivery: a worker acknowledges (XACK) and deletes (XDEL) a job after its answer is on the reply stream, so
the stream's length is the number of jobs waiting or running, which the server caps (`QueueFull`, 429).
While it runs a job a worker re-claims it every few seconds (a heartbeat that keeps its idle time low); a
worker killed mid-job stops doing so, and after `REWARD_QUEUE_CLAIM_AFTER_S` another worker takes the job
over with XAUTOCLAIM. A job that has taken down `REWARD_QUEUE_MAX_DELIVERIES` workers is answered `error`.
A job can thus run twice (a worker stalled rather than died); the server keeps the first answer and drops
the second, and the verdict is the same since grading is deterministic up to timing. A job whose deadline
has passed is dropped unread: its request has already been answered `error`.

Failures: if Redis cannot be reached when a request enqueues, the request gets 503 (nothing was graded);
a request whose jobs get no answer by their deadline (no worker, or Redis lost them) gets status `error`
for those completions, never `incorrect`. Server and workers reconnect by themselves when Redis returns.
"""
