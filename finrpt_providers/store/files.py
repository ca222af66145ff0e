"""Where the store's objects live: one small filesystem abstraction, three backends.

The engine (:mod:`.engine`) asks only for whole objects: read, write (seen whole or not at
all), list a prefix, head, delete, and a seekable reader for Parquet footers and row
groups. Backends:

* :class:`LocalFiles`: a directory (a path, or ``file://``): temporary name, then
  ``os.replace``.
* :class:`S3Files`: ``s3://bucket/prefix`` through boto3 with the store's own credentials
  (``FINRPT_STORE_S3_*``); one PUT is one object, whole or not at all; every request has a
  total deadline (``FINRPT_STORE_REQUEST_DEADLINE``, see :mod:`finrpt_providers.deadline`),
  however slowly the server sends.
* :class:`FsspecFiles`: any other scheme fsspec knows (``memory://``, ``gs://``, ...), each
  call bounded by the same deadline.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import deadline, redact
from ..errors import ConfigurationError, DataIntegrityError, ProviderError, ProviderUnavailable

if TYPE_CHECKING:
    from ..config import Config

#: the slowest pace a transfer may keep: its deadline grows a second per this many bytes
MIN_RATE = 256 << 10
#: the most a small object (a record, a mark) may be
SMALL_MAX = 1 << 20
REPAIR_HINT = "run `finrpt-providers verify --repair`"


@dataclass(frozen=True)
class Entry:
    """An object: its path (relative to the store's base), size and version (what changes
    when it is replaced: mtime and inode on a disk, the ETag on object storage)."""

    path: str
    size: int
    version: Any


class Files:
    """The operations the engine needs (paths are relative to ``base``, '/'-separated)."""

    local = False  # True: this machine's disk
    root = ""  # the location, fit to print

    def read(self, path: str) -> bytes | None: ...
    def write(self, path: str, data: bytes) -> None: ...

    def write_stream(self, path: str, produce) -> None:
        """An object written by ``produce(sink)`` (a pyarrow output stream), whole or not at all."""
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        produce(sink)
        self.write(path, sink.getvalue().to_pybytes())

    def list(self, prefix: str) -> list[Entry]: ...
    def head(self, path: str) -> Entry | None: ...
    def delete(self, path: str) -> None: ...
    def reader(self, path: str, entry: Entry) -> Any: ...  # what pyarrow.parquet.ParquetFile opens

    def folder_version(self, prefix: str) -> tuple | None:
        return None  # object storage has no folder to ask: list it

    def shown(self, path: str) -> str:
        return f"{self.root}/{path}"

    def error(self, e: BaseException, what: str) -> ProviderError:
        return ProviderUnavailable(f"the store at {self.root} cannot {what} ({type(e).__name__}: "
                                   f"{redact.scrub(str(e))[:200]}): check FINRPT_PROVIDERS_CACHE_DIR"
                                   + (" and the FINRPT_STORE_S3_* settings" if not self.local else ""))


#: a folder's dead writers' temp files are looked for at most this often per process
SWEEP_SECONDS = 30.0
_SWEPT: dict[str, float] = {}
_SWEPT_LOCK = threading.Lock()


class LocalFiles(Files):
    local = True

    def __init__(self, base: str | os.PathLike):
        self.base = Path(base)
        self.root = str(self.base)

    def _p(self, path: str) -> Path:
        return self.base / path

    def _unwritable(self, path: Path, e: OSError) -> ProviderUnavailable:
        why = e.strerror or type(e).__name__
        hint = ("a file is where a directory must be" if isinstance(e, (NotADirectoryError, FileExistsError))
                else "it is read-only or not yours" if isinstance(e, PermissionError) else "check the disk")
        return ProviderUnavailable(f"the store cannot write {path} ({why}: {hint}): set FINRPT_PROVIDERS_CACHE_DIR "
                                   "to a writable directory")

    def read(self, path: str) -> bytes | None:
        try:
            return self._p(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise self.error(e, f"read {path}") from None

    def write(self, path: str, data: bytes) -> None:
        def produce(f) -> None:
            f.write(data)

        self._replace(path, produce, arrow=False)

    def write_stream(self, path: str, produce) -> None:
        """Straight to a temporary file beside the object, then renamed: a large object never
        sits in memory whole."""
        self._replace(path, produce, arrow=True)

    def _replace(self, path: str, produce, arrow: bool) -> None:
        """``produce(file)`` into a temporary file beside ``path``, then renamed over it: a
        reader sees the old object or the new one, never half of one."""
        import pyarrow as pa

        target = self._p(path)
        # named after its writer (no Parquet reader globs a dot file): a dead writer's is found by its pid
        tmp = target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with (pa.OSFile(str(tmp), "wb") if arrow else open(tmp, "wb")) as f:  # arrow: for pyarrow writers
                produce(f)
            os.replace(tmp, target)
            self._sweep(target.parent)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise self._unwritable(target, e) from None
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _sweep(self, directory: Path) -> None:
        """Remove the temporary files of writers that died (killed mid-write) in ``directory``:
        on a process's first write there, then at most every SWEEP_SECONDS (a folder of 2,000
        marks written in a row is listed a few times, not 2,000)."""
        key = str(directory)
        now = time.monotonic()
        with _SWEPT_LOCK:
            last = _SWEPT.get(key)
            if last is not None and now - last < SWEEP_SECONDS:
                return
            if len(_SWEPT) >= 4096:
                _SWEPT.clear()
            _SWEPT[key] = now
        try:
            with os.scandir(directory) as it:
                dead = [e.path for e in it if e.name.startswith(".") and e.name.endswith(".tmp")
                        and not writer_alive(e.name)]
        except OSError:
            return
        for p in dead:
            with contextlib.suppress(OSError):
                os.unlink(p)

    def list(self, prefix: str) -> list[Entry]:
        out: list[Entry] = []
        top = self._p(prefix)
        cut = len(str(self.base).rstrip(os.sep)) + 1  # paths below the base, by slicing (relpath is slow)
        try:
            stack = [top]
            while stack:
                d = stack.pop()
                try:
                    it = os.scandir(d)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                with it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        else:
                            try:
                                st = e.stat(follow_symlinks=False)
                            except FileNotFoundError:
                                continue  # renamed or removed by a writer since the directory was read
                            rel = e.path[cut:].replace(os.sep, "/") if os.sep != "/" else e.path[cut:]
                            out.append(Entry(rel, st.st_size, (st.st_mtime_ns, st.st_ino, st.st_size)))
        except PermissionError as e:
            raise ProviderUnavailable(f"the store cannot read {top} ({e.strerror}): set FINRPT_PROVIDERS_CACHE_DIR "
                                      "to a directory you can read and write") from None
        return out

    def folder_version(self, prefix: str) -> tuple | None:
        """What changes whenever an entry of folder ``prefix`` is created, renamed or removed
        (its mtime and inode), and when that was (None: no such folder)."""
        try:
            st = os.stat(self._p(prefix))
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino), st.st_mtime

    def head(self, path: str) -> Entry | None:
        try:
            st = os.stat(self._p(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise self.error(e, f"look at {path}") from None
        return Entry(path, st.st_size, (st.st_mtime_ns, st.st_ino, st.st_size))

    def delete(self, path: str) -> None:
        try:
            self._p(path).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as e:
            raise self._unwritable(self._p(path), e) from None

    def reader(self, path: str, entry: Entry) -> Any:
        """The object as ``entry`` saw it: opened, then checked to be that version (replaced
        meanwhile by a writer: FileNotFoundError, never a footer read against another file)."""
        import pyarrow as pa

        p = str(self._p(path))
        f = pa.memory_map(p)
        try:
            st = os.stat(p)
        except OSError:
            st = None
        if st is None or (st.st_mtime_ns, st.st_ino, st.st_size) != entry.version:
            f.close()
            raise FileNotFoundError(f"{path} was replaced while it was read")
        return f

    def shown(self, path: str) -> str:
        return str(self._p(path))


def writer_alive(name: str) -> bool:
    """Whether the process that named temporary file ``name`` (``.x.<pid>-<id>.tmp``) on this
    machine still runs (a name of another form: assumed alive; verify reports it by age)."""
    try:
        pid = int(name.rsplit(".", 2)[-2].split("-", 1)[0])
    except (ValueError, IndexError):
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class _Ranged(io.RawIOBase):
    """A seekable reader over ranged reads (``fetch(start, end)``): pyarrow reads a Parquet
    footer and the row groups it needs, never the whole object."""

    def __init__(self, fetch, size: int):
        self._fetch, self._size, self._pos = fetch, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else self._pos + offset if whence == 1 else self._size + offset
        return self._pos

    def size(self) -> int:
        return self._size

    def readinto(self, b) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        data = self._fetch(self._pos, self._pos + n)
        b[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        n = min(n, self._size - self._pos)
        if n <= 0:
            return b""
        data = self._fetch(self._pos, self._pos + n)
        self._pos += len(data)
        return data


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


class S3Files(Files):
    """``s3://bucket/prefix`` with the store's own credentials; a total deadline per request."""

    def __init__(self, url: str, config: Config | None):
        rest = url.split("://", 1)[1].strip("/")
        if "@" in rest.split("/", 1)[0]:
            raise ConfigurationError(f"FINRPT_PROVIDERS_CACHE_DIR={shown(url)!r} carries credentials in the URL: "
                                     "put them in FINRPT_STORE_S3_ACCESS_KEY and FINRPT_STORE_S3_SECRET_KEY")
        self.bucket, _, self.prefix = rest.partition("/")
        if not self.bucket:
            raise ConfigurationError(f"FINRPT_PROVIDERS_CACHE_DIR={url!r} names no bucket: use s3://bucket/prefix")
        self.root = f"s3://{rest}"
        opts: dict[str, Any] = {}
        self.deadline = 60.0
        if config is not None:
            region = config.value("FINRPT_STORE_S3_REGION") or "us-east-1"
            # always explicit: never AWS_ENDPOINT_URL or ~/.aws/config of the machine this runs on
            opts["endpoint_url"] = config.value("FINRPT_STORE_S3_ENDPOINT") or f"https://s3.{region}.amazonaws.com"
            key, secret = config.get("FINRPT_STORE_S3_ACCESS_KEY"), config.get("FINRPT_STORE_S3_SECRET_KEY")
            if bool(key) != bool(secret):
                raise ConfigurationError("an s3:// store needs both FINRPT_STORE_S3_ACCESS_KEY and "
                                         "FINRPT_STORE_S3_SECRET_KEY (or neither: the AWS credential chain)")
            if key:
                redact.register(key, secret)
                opts["aws_access_key_id"], opts["aws_secret_access_key"] = key, secret
            opts["region_name"] = region
            self.deadline = float(config.value("FINRPT_STORE_REQUEST_DEADLINE"))
        self._opts = opts

    @property
    def client(self):
        ident = tuple(sorted(self._opts.items()))
        with _CLIENTS_LOCK:
            c = _CLIENTS.get(ident)
            if c is None:
                import boto3
                from botocore.config import Config as BotoConfig

                redact.protect(*redact.HTTP_LOGGERS)  # botocore logs signed headers at DEBUG
                c = boto3.session.Session().client(
                    "s3", **self._opts,
                    config=BotoConfig(signature_version="s3v4", connect_timeout=10, read_timeout=30,
                                      max_pool_connections=32, retries={"max_attempts": 4, "mode": "standard"},
                                      s3={"addressing_style": "path"}))
                deadline.install_botocore(c)  # a total deadline per request, not only per read
                _CLIENTS[ident] = c
            return c

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _call(self, what: str, fn, size: int = 0):
        with deadline.budget(self.deadline + size / MIN_RATE, f"the store's {what}") as b:
            try:
                return fn(b)
            except ProviderError:
                raise
            except Exception as e:
                if b.exceeded or isinstance(e, deadline.DeadlineExceeded):
                    raise ProviderUnavailable(f"the store at {self.root} took longer than {b.seconds:g} s in all "
                                              f"to {what} (FINRPT_STORE_REQUEST_DEADLINE): its endpoint answers too "
                                              "slowly; try again later") from None
                if _missing(e):
                    raise FileNotFoundError(what) from None
                raise self.error(e, what) from None

    def read(self, path: str) -> bytes | None:
        """A small object (a record, a mark) whole; its deadline is not stretched by the size the
        server announces."""
        def go(b):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(path))
            if int(resp.get("ContentLength") or 0) > SMALL_MAX:
                resp["Body"].close()
                raise DataIntegrityError(f"the store's {path} announces {resp.get('ContentLength')} bytes, more than "
                                         f"a record can be: {REPAIR_HINT}")
            with contextlib.closing(resp["Body"]) as body:
                return body.read()  # to its end, so the connection goes back to the pool (size checked above)

        try:
            return self._call(f"read {path}", go)
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        self._call(f"write {path}", lambda b: self.client.put_object(Bucket=self.bucket, Key=self._key(path),
                                                                      Body=data), len(data))

    def list(self, prefix: str) -> list[Entry]:
        def go(b):
            out = []
            start = len(self.prefix) + 1 if self.prefix else 0
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self._key(prefix).rstrip("/") + "/")
            for page in pages:
                for o in page.get("Contents", []) or []:
                    out.append(Entry(o["Key"][start:], int(o["Size"]), str(o.get("ETag", "")).strip('"')))
            return out

        return self._call(f"list {prefix}", go)

    def head(self, path: str) -> Entry | None:
        try:
            r = self._call(f"look at {path}", lambda b: self.client.head_object(Bucket=self.bucket,
                                                                                 Key=self._key(path)))
        except FileNotFoundError:
            return None
        return Entry(path, int(r.get("ContentLength") or 0), str(r.get("ETag", "")).strip('"'))

    def delete(self, path: str) -> None:
        self._call(f"delete {path}", lambda b: self.client.delete_object(Bucket=self.bucket, Key=self._key(path)))

    def reader(self, path: str, entry: Entry) -> Any:
        def fetch(start: int, end: int) -> bytes:
            def go(b):
                resp = self.client.get_object(Bucket=self.bucket, Key=self._key(path), Range=f"bytes={start}-{end - 1}",
                                              IfMatch=f'"{entry.version}"' if entry.version else "*")
                return resp["Body"].read()

            try:
                return self._call(f"read {path}", go, end - start)
            except FileNotFoundError:
                raise FileNotFoundError(f"{path} vanished while it was read") from None

        return _Ranged(fetch, entry.size)


def shown(url: str) -> str:
    """``url`` fit to print: never the user-info part (``scheme://key:secret@host/...``)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1]
    return redact.scrub(f"{scheme}://{host}" + (f"/{path}" if path else ""))


def _missing(e: Exception) -> bool:
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover
        return False
    if isinstance(e, bx.ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound", "PreconditionFailed", "412")
    return False


class FsspecFiles(Files):
    """Any scheme fsspec knows (``memory://``, ``gs://``, ``abfs://``...), each call within
    the store's total deadline."""

    def __init__(self, url: str, config: Config | None):
        scheme, rest = url.split("://", 1)
        try:
            import fsspec
        except ImportError:
            raise ConfigurationError(f"FINRPT_PROVIDERS_CACHE_DIR={scheme}://... needs fsspec for that scheme: pip "
                                     "install 'finrpt-providers[dask]' (and the fsspec driver of the scheme)") from None
        try:
            self.fs = fsspec.filesystem(scheme)
        except (ImportError, ValueError) as e:
            raise ConfigurationError(f"no filesystem for {scheme}:// ({e}): install its fsspec driver, or use s3:// "
                                     "or a local path") from None
        self.base = rest.rstrip("/")
        if scheme == "memory":
            self.base = "/" + self.base.lstrip("/")
        self.root = shown(f"{scheme}://{rest.rstrip('/')}")
        self.deadline = float(config.value("FINRPT_STORE_REQUEST_DEADLINE")) if config is not None else 60.0
        self._inline = scheme in ("memory", "file", "local")  # in-process: nothing to wait for

    def _p(self, path: str) -> str:
        return f"{self.base}/{path}"

    def _call(self, what: str, fn):
        if self._inline:
            try:
                return fn()
            except FileNotFoundError:
                raise
            except OSError as e:
                raise self.error(e, what) from None
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["v"] = fn()
            except BaseException as e:  # handed to the caller
                box["e"] = e
            done.set()

        threading.Thread(target=run, name="finrpt-store-io", daemon=True).start()
        if not done.wait(self.deadline):
            raise ProviderUnavailable(f"the store at {self.root} took longer than {self.deadline:g} s in all to "
                                      f"{what} (FINRPT_STORE_REQUEST_DEADLINE): try again later")
        if "e" in box:
            e = box["e"]
            if isinstance(e, FileNotFoundError):
                raise e
            raise self.error(e, what) from None
        return box["v"]

    def read(self, path: str) -> bytes | None:
        try:
            return self._call(f"read {path}", lambda: self.fs.cat_file(self._p(path)))
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        self._call(f"write {path}", lambda: self.fs.pipe_file(self._p(path), data))

    def list(self, prefix: str) -> list[Entry]:
        base = self.base.lstrip("/")

        def go():
            try:
                found = self.fs.find(self._p(prefix), detail=True)
            except FileNotFoundError:
                return []
            out = []
            for name, info in found.items():
                rel = name.lstrip("/")[len(base) + 1:] if name.lstrip("/").startswith(base) else name
                out.append(Entry(rel, int(info.get("size") or 0), _version_of(info)))
            return out

        return self._call(f"list {prefix}", go)

    def head(self, path: str) -> Entry | None:
        try:
            info = self._call(f"look at {path}", lambda: self.fs.info(self._p(path)))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return Entry(path, int(info.get("size") or 0), _version_of(info))

    def delete(self, path: str) -> None:
        try:
            self._call(f"delete {path}", lambda: self.fs.rm_file(self._p(path)))
        except FileNotFoundError:
            pass

    def reader(self, path: str, entry: Entry) -> Any:
        data = self.read(path)
        if data is None:
            raise FileNotFoundError(f"{path} vanished while it was read")
        import pyarrow as pa

        return pa.BufferReader(data)


def _version_of(info: dict) -> Any:
    for k in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "created"):
        if info.get(k) is not None:
            return (str(info[k]), int(info.get("size") or 0))
    return (None, int(info.get("size") or 0))


def files_for(location: Any, config: Config | None) -> Files:
    """The backend for ``location``: a path or ``file://`` (this machine's disk), ``s3://``
    (boto3, the store's own credentials), anything else through fsspec."""
    if isinstance(location, str) and "://" in location:
        scheme = location.split("://", 1)[0].lower()
        if scheme == "file":
            return LocalFiles("/" + location.split("://", 1)[1].lstrip("/"))
        if scheme in ("s3", "s3a"):
            return S3Files(location, config)
        return FsspecFiles(location, config)
    return LocalFiles(location)


__all__ = ["Entry", "Files", "LocalFiles", "S3Files", "FsspecFiles", "files_for", "MIN_RATE"]
