"""A base class for services that do one piece of work every few seconds."""

from __future__ import annotations

import math
import threading

from bgservice_core._contract import Config
from bgservice_core._errors import ServiceCrashedError


class LoopService:
    """Run :meth:`tick` every ``period`` seconds in a thread of its own.

    Subclasses override :meth:`tick`, and optionally :meth:`setup` and
    :meth:`teardown`, which run in the loop's thread before the first tick and
    after the last one. The first tick runs as soon as the service starts; a
    tick is never run while another is still running.

    :meth:`stop` wakes the loop at once, even in the middle of a long wait, lets
    a tick in progress finish, and returns when the thread has ended. If the
    loop dies with an exception while running, the crash is reported to the
    chassis through :meth:`Config.report_failure`; if it dies while stopping,
    :meth:`stop` raises :class:`ServiceCrashedError` from it instead.

    :param config: the configuration the backend's constructor received.
    :param period: seconds to wait between the end of one tick and the next.
    """

    def __init__(self, config: Config, period: float) -> None:
        number = isinstance(period, int | float) and not isinstance(period, bool)
        if not (number and math.isfinite(period)) or period <= 0:
            raise ValueError(
                f"period must be a positive number of seconds, not {period!r}"
            )
        self.config = config
        self.period = float(period)
        self.logger = config.logger

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Whether a stop() in another thread waits for the loop to end: only
        # then can a crash be handed to it rather than reported.
        self._stop_waiting = False
        self._unreported_error: BaseException | None = None

    def tick(self) -> None:
        """Do one round of work. An exception here ends the loop as a crash."""
        raise NotImplementedError(f"{type(self).__name__} must implement tick()")

    def setup(self) -> None:
        """Prepare, in the loop's thread, before the first tick."""

    def teardown(self) -> None:
        """Clean up, in the loop's thread, after the last tick."""

    @property
    def running(self) -> bool:
        """Whether the loop's thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` has been called; long ticks may check it."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Launch the loop and return at once; a second call, or one after
        :meth:`stop`, does nothing."""
        with self._lock:
            if self._thread is not None or self._stopping.is_set():
                return
            label = self.config.backend_name or type(self).__name__
            self._thread = threading.Thread(
                target=self._run, name=f"bgservice-loop-{label}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Ask the loop to finish and wait until it has; harmless to repeat.

        :raises ServiceCrashedError: the loop failed while stopping.
        """
        with self._lock:
            self._stopping.set()
            thread = self._thread
            caller = threading.current_thread()
            joining = thread is not None and thread is not caller
            self._stop_waiting = self._stop_waiting or joining
        if thread is not None and joining:
            thread.join()

        with self._lock:
            error, self._unreported_error = self._unreported_error, None
        if error is not None:
            raise ServiceCrashedError(self.config.backend_name) from error

    # BaseException throughout: threading drops a SystemExit raised in a thread
    # without a word, and a crash must never vanish.

    def _run(self) -> None:
        try:
            self.setup()
        except BaseException as err:  # noqa: BLE001 - a crash is reported, not lost
            self._fail(err)
            return

        try:
            while not self._stopping.is_set():
                self.tick()
                self._stopping.wait(self.period)
        except BaseException as err:  # noqa: BLE001 - a crash is reported, not lost
            self._fail(err)
        finally:
            self._teardown_quietly()

    def _teardown_quietly(self) -> None:
        try:
            self.teardown()
        except BaseException as err:  # noqa: BLE001 - a crash is reported, not lost
            self._fail(err)

    def _fail(self, error: BaseException) -> None:
        """Hand a crash to the stop() waiting for the loop, else report it."""
        with self._lock:
            free = self._unreported_error is None
            handed_to_stop = self._stop_waiting and free
            if handed_to_stop:
                self._unreported_error = error
        if not handed_to_stop:
            # No stop() will raise it (none waits, or one already has an error
            # to raise, e.g. teardown failing after a tick did): report it.
            self.config.report_failure(error)
