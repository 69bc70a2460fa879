"""Compression of stored trace fragments: zstd, with a dictionary trained on the store's own data.

A fragment is small (a few kilobytes before compression), too small for zstd to learn
its repetitions from the fragment alone: attribute keys, service and operation names,
URL prefixes. A dictionary trained on a sample of fragments holds those once for all, and
halves what a fragment takes on disk. So the store compresses its first fragments without
a dictionary while it keeps a sample of them, trains one (in a background thread, so no
request waits for it) once the sample is large enough, saves it in
``zstd_dictionaries``, and compresses with it from then on. Every fragment row names the
dictionary it needs (0: none), so fragments compressed with any dictionary, by any
process, stay readable. A process that opens the store uses the newest dictionary saved.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Connection

from collectors.store.database import Database
from collectors.store.schema import zstd_dictionaries

LEVEL = 3
"""zstd's level: 3 compresses a fragment in about 0.5 µs a span, 6 takes three times as long
for 5 % less."""
DICTIONARY_BYTES = 32 * 1024
SAMPLE_FRAGMENTS = 1000
"""Fragments kept to train the dictionary on."""
SAMPLE_MIN_BYTES = 256 * 1024
"""Training waits until the sample holds this much text (zstd needs enough to learn from)."""
NO_DICTIONARY = 0

log = logging.getLogger(__name__)


class Compression:
    """Compresses and decompresses fragments; safe to share between threads."""

    def __init__(
        self,
        database: Database,
        *,
        sample_fragments: int = SAMPLE_FRAGMENTS,
        sample_min_bytes: int = SAMPLE_MIN_BYTES,
    ) -> None:
        self._database = database
        self._sample_fragments = sample_fragments
        self._sample_min_bytes = sample_min_bytes
        self._lock = threading.Lock()
        self._local = threading.local()
        self._dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
        self._current = NO_DICTIONARY
        self._sample: list[bytes] | None = []
        self._sample_bytes = 0
        self._training: threading.Thread | None = None
        with database.connect() as conn:
            newest = conn.execute(
                sa.select(zstd_dictionaries.c.id, zstd_dictionaries.c.data)
                .order_by(zstd_dictionaries.c.id.desc())
                .limit(1)
            ).first()
        if newest is not None:
            self._adopt(newest.id, newest.data)

    @property
    def dictionary_id(self) -> int:
        """The dictionary new fragments are compressed with (0: none yet)."""
        return self._current

    def compress(self, raw: bytes) -> tuple[int, bytes]:
        """``raw`` compressed, and the id of the dictionary it needs."""
        current = self._current
        compressor = self._compressors().get(current)
        if compressor is None:
            if current == NO_DICTIONARY:
                compressor = zstandard.ZstdCompressor(level=LEVEL)
            else:
                compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=self._dictionaries[current])
            self._compressors()[current] = compressor
        if current == NO_DICTIONARY:
            self._keep_sample(raw)
        return current, compressor.compress(raw)

    def decompress(self, conn: Connection, dictionary_id: int, data: bytes) -> bytes:
        """The text of a stored fragment; reads its dictionary from the database the first
        time this process meets it."""
        decompressors = self._decompressors()
        decompressor = decompressors.get(dictionary_id)
        if decompressor is None:
            if dictionary_id == NO_DICTIONARY:
                decompressor = zstandard.ZstdDecompressor()
            else:
                decompressor = zstandard.ZstdDecompressor(dict_data=self._dictionary(conn, dictionary_id))
            decompressors[dictionary_id] = decompressor
        return decompressor.decompress(data)

    def wait_for_training(self, timeout: float | None = None) -> None:
        """Wait until a dictionary being trained is saved (for tests and bulk loads)."""
        training = self._training
        if training is not None:
            training.join(timeout)

    # -- dictionaries -------------------------------------------------------------------------

    def _dictionary(self, conn: Connection, dictionary_id: int) -> zstandard.ZstdCompressionDict:
        found = self._dictionaries.get(dictionary_id)
        if found is None:
            data = conn.execute(
                sa.select(zstd_dictionaries.c.data).where(zstd_dictionaries.c.id == dictionary_id)
            ).scalar_one()
            found = zstandard.ZstdCompressionDict(bytes(data))
            with self._lock:
                self._dictionaries[dictionary_id] = found
        return found

    def _adopt(self, dictionary_id: int, data: bytes) -> None:
        with self._lock:
            self._dictionaries[dictionary_id] = zstandard.ZstdCompressionDict(bytes(data))
            self._current = dictionary_id
            self._sample = None

    def _keep_sample(self, raw: bytes) -> None:
        with self._lock:
            sample = self._sample
            if sample is None or self._training is not None:
                return
            if len(sample) < self._sample_fragments:
                sample.append(raw)
                self._sample_bytes += len(raw)
            if len(sample) < self._sample_fragments or self._sample_bytes < self._sample_min_bytes:
                return
            self._sample = None
            self._training = threading.Thread(target=self._train, args=(sample,), name="zstd-dictionary", daemon=True)
        self._training.start()

    def _train(self, sample: list[bytes]) -> None:
        try:
            started = time.perf_counter()
            trained = zstandard.train_dictionary(DICTIONARY_BYTES, sample, level=LEVEL)
            data = trained.as_bytes()
            with self._database.write() as conn:
                dictionary_id = conn.execute(
                    sa.insert(zstd_dictionaries).values(created_ns=time.time_ns(), data=data).returning(
                        zstd_dictionaries.c.id
                    )
                ).scalar_one()
            self._adopt(dictionary_id, data)
            log.info(
                "trained a %d-byte compression dictionary on %d fragments in %.1f s",
                len(data),
                len(sample),
                time.perf_counter() - started,
            )
        except Exception:  # a dictionary is an optimisation: without one, fragments still compress
            log.exception("could not train a compression dictionary; fragments are compressed without one")

    def _compressors(self) -> dict[int, zstandard.ZstdCompressor]:
        found = getattr(self._local, "compressors", None)
        if found is None:
            found = self._local.compressors = {}
        return found

    def _decompressors(self) -> dict[int, zstandard.ZstdDecompressor]:
        found = getattr(self._local, "decompressors", None)
        if found is None:
            found = self._local.decompressors = {}
        return found
