"""Running code that might hang, so that a test fails instead of waiting for ever."""
import threading


def run_bounded(fn, timeout_s=600):
    """Run ``fn()`` in a daemon thread for at most ``timeout_s`` (generous: the point is that
    it ends at all); returns ``(finished, error)``, ``error`` the exception ``fn`` raised."""
    outcome = {}

    def target():
        try:
            fn()
        except BaseException as err:  # noqa: BLE001  (handed to the test)
            outcome["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return not worker.is_alive(), outcome.get("error")
