"""The local twin of SageMaker hosting: one process serving every local endpoint, on 127.0.0.1 by default.

It is a service of its own, like SageMaker's endpoint service, not part of an Airflow task: it
never imports Airflow (artifacts are read with fsspec directly and the process's own AWS
credentials: :func:`mlops.core.storage.read_bytes_without_airflow`), and it starts with an environment
built from an allowlist (:func:`runtime_environment`), never the environment of the process that
started it (an Airflow task's blocks Airflow's database), in a session of its own.

It speaks the SageMaker Runtime REST path, so the real boto3 ``sagemaker-runtime`` client works
against it with ``endpoint_url=settings.runtime_url`` (the SigV4 signature is not checked)::

    POST /endpoints/{name}/invocations     InvokeEndpoint: body, Content-Type, Accept
    GET  /ping                             health (200), with this runtime's pid and folder

and an admin API that :class:`mlops.backends.local.hosting.LocalHosting` drives::

    PUT    /admin/endpoints/{name}         {config_name, model_uri, sha256, environment, account}
    GET    /admin/endpoints/{name}?account=…  {name, config_name, status, sha256, account, ...}
    DELETE /admin/endpoints/{name}?account=…
    GET    /admin/endpoints[?account=…]

Every endpoint belongs to an account (the local twin's stages live in accounts of their own, as
in AWS's multi-account deployment design): the admin API sees only the endpoints of the account
it is asked for, and an invocation signed with an account id as its access key (what
``LocalHosting.runtime_client`` sends) reaches only that account's endpoints; another account's
is "not found", as SageMaker answers. Endpoint names are one namespace here (SageMaker's are per
account): a name taken by another account is refused. An unsigned request, or one signed with
a key that is not an account id (``curl``, the demo's hint), reaches any endpoint by name.

Requests are answered by ``include/serving/inference.py``, the handlers the SageMaker
scikit-learn container runs (``model_fn`` once per deploy; per request ``parse_request`` ->
``predict_fn`` -> ``write_response``, which the container's ``input_fn``/``output_fn`` wrap), so a
model answers the same way on both backends. The request is read as the container reads it: the
content type defaults to application/json, and a missing or ``*/*`` Accept becomes the
endpoint's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (application/json by default).

Errors are answered as SageMaker Runtime answers them (botocore parses them with the
``sagemaker-runtime`` error shapes): an unknown, failed or badly named endpoint is a 400
``ValidationError``; a body over 6 MB (4 MB on a serverless endpoint) a 413; whatever the model answers other than 200 is a 424
``ModelError`` carrying the container's own status and body in ``OriginalStatusCode`` and
``OriginalMessage`` (4xx for a request the handlers refuse, 500 for any other exception, as in
the container) and a ``LogStreamArn``; a failure of the runtime itself is a 500 ``InternalFailure``.

Invocations are answered on prediction threads (:class:`PredictionBatcher`; one per core but one, at
most 4, or ``MLOPS_RUNTIME_WORKERS``) whose native thread pools (OpenMP, BLAS) are limited to one
thread each: a single-record request pays for no thread fan-out (on a busy machine OpenMP's
spinning threads cost a small prediction ten times its work). Invocations of one endpoint that
queue up while the threads are busy are answered together: the handlers' ``batch_input_fn``
parses their bodies into one input where it can (``text/csv`` for a model with a schema: a frame,
or the compiled path's encoded rows; see ``include/serving/inference.py``), else ``parse_request``
parses each and inputs of the same signature (a frame's column types) are combined; one ``predict_fn`` call predicts them and the predictions are split back per
request for ``write_response``. The models served here predict each record on its own, so an answer
does not depend on its neighbours; when anything fails in a combined call, each request is
answered alone, so one bad request never fails another. A batch waits up to 3 ms
(``MLOPS_RUNTIME_BATCH_WAIT_MS``) for the clients the previous batch answered, so concurrent
clients share one prediction instead of taking turns; a lone client never waits.

Two process settings keep the slowest answers close to the typical ones: the GIL hand-over
interval is 1 ms instead of 5 (the event loop gets to read and answer while the prediction
thread runs Python), and once the endpoints are loaded (and after every deploy) the objects
alive are frozen out of the garbage collector (:func:`freeze_heap`), which otherwise paused the
process for up to 140 ms at a time.

A deploy verifies the artifact's sha256 before extracting it into
``runtime_dir/models/<sha256>/``, loads it, and only then swaps it in: the old model serves
until the new one is ready, and a failed deploy leaves the endpoint as it was. The endpoint
table persists in ``runtime_dir/endpoints.json`` and is restored on start; the process writes
``runtime_dir/runtime.pid`` and logs every request to ``runtime_dir/runtime.log``.

Run it with ``python -m mlops.backends.local.runtime <command>`` (``plugins/`` on ``PYTHONPATH``):

    serve    serve in the foreground (what a container or a service manager runs)
    start    start it detached (own session, clean environment, logs to runtime.log), wait
             until /ping answers, print its URL and pid; exits 0 at once when it already runs
    stop     SIGTERM, then SIGKILL after 10 s; fine when none runs
    status   pid, URL and endpoints as JSON; exit code 3 when it does not run

or from Python: :func:`start_runtime` (``start``; returns the pid), :func:`stop_runtime`
(``stop``), :func:`status`. :class:`~mlops.backends.local.hosting.LocalHosting` calls
:func:`start_runtime` on demand. The settings (:mod:`mlops.core.settings`): ``MLOPS_RUNTIME_PORT``,
``MLOPS_RUNTIME_HOST`` (the address bound; 127.0.0.1 unless a container must be reached from
others) and ``MLOPS_RUNTIME_URL`` (where clients reach it; a runtime at a non-loopback URL is a
service started elsewhere, e.g. docker-compose's ``model-runtime``, and is waited for, never started).
"""

from mlops.backends.local.runtime.service import ping, start_runtime, status, stop_runtime

__all__ = ["ping", "start_runtime", "status", "stop_runtime"]
