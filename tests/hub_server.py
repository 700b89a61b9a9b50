"""A Hub-compatible HTTP server on loopback, for tests.

It implements the part of the Hugging Face Hub API that huggingface_hub 2.x and
transformers 5.x use to create repos, upload and download: repos of models and datasets
stored on disk, a commit graph per repo (branches, tags and commit shas resolve), token
auth (``Authorization: Bearer <token>``, tokens map to users), private repos, and two
upload paths decided per file in ``preupload``: ``regular`` files arrive inline (base64)
in the NDJSON commit, ``lfs`` files through the git-LFS batch API (clients must set
``HF_HUB_DISABLE_XET=1``; there is no Xet storage here). It binds 127.0.0.1 only and
refuses clients and Host headers that are not loopback.

Run it alone with ``python tests/hub_server.py --port 0``; it prints its URL and tokens.
In pytest, the session fixture ``hub_server`` starts one for the whole session.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEFAULT_TOKENS", "HubError", "HubServer", "git_sha1", "hub_server"]

DEFAULT_TOKENS = {"hf_alice_write": "alice", "hf_bob_write": "bob"}
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.npy", "*.ckpt")
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files from 10 MiB on in LFS
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_sha1(data: bytes) -> str:
    """The git blob id of ``data``: sha1 of ``b"blob <len>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class HubError(Exception):
    """An HTTP error answer: status, ``X-Error-Code`` and a message."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubStore:
    """Repos, commits and blobs. Blobs live in ``root/objects`` (git sha1) and ``root/lfs``
    (sha256); the metadata is written to ``root/state.json`` after every change."""

    def __init__(self, root: Path):
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "lfs").mkdir(exist_ok=True)
        state = root / "state.json"
        self.repos: dict[str, dict] = json.loads(state.read_text())["repos"] if state.is_file() else {}
        self.lock = threading.RLock()

    def save(self) -> None:
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps({"repos": self.repos}))
        tmp.replace(self.root / "state.json")

    # -- blobs ------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        oid = git_sha1(data)
        (self.root / "objects" / oid).write_bytes(data)
        return oid

    def lfs_path(self, sha256: str) -> Path:
        return self.root / "lfs" / sha256

    def entry_path(self, entry: dict) -> Path:
        return self.lfs_path(entry["lfs"]) if entry["lfs"] else self.root / "objects" / entry["oid"]

    # -- repos and revisions ----------------------------------------------------------
    def get(self, key: str) -> dict:
        if key not in self.repos:
            raise HubError(404, f"Repository {key} not found", "RepoNotFound")
        return self.repos[key]

    @staticmethod
    def resolve(repo: dict, revision: str) -> str:
        """Branch, tag (optionally as ``refs/heads/..``/``refs/tags/..``) or commit sha -> sha."""
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        for refs in (repo["heads"], repo["tags"]):
            if name in refs:
                return refs[name]
        if COMMIT_SHA.match(revision) and revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def commit(self, repo: dict, branch: str, tree: dict, title: str, message: str, author: str) -> str:
        parent = repo["heads"].get(branch)
        payload = json.dumps([parent, tree, title, message, author, time.time_ns()], sort_keys=True)
        sha = hashlib.sha1(payload.encode()).hexdigest()
        repo["commits"][sha] = {
            "parent": parent, "tree": tree, "title": title, "message": message, "author": author, "date": _now(),
        }  # fmt: skip
        repo["heads"][branch] = sha
        self.save()
        return sha


class HubServer:
    """The server: ``start()`` serves in a daemon thread, ``url`` is its endpoint.

    Args:
        root: storage folder (a temporary one by default).
        tokens: token -> user name.
        lfs_patterns: the ``.gitattributes`` LFS patterns of new repos (fnmatch, as in git).
        lfs_threshold: files this large go through LFS whatever their name.
    """

    def __init__(self, root=None, *, port=0, host="127.0.0.1", tokens=None, lfs_patterns=LFS_PATTERNS,
                 lfs_threshold=LFS_THRESHOLD):  # fmt: skip
        if not LOOPBACK.match(host):
            raise ValueError(f"host={host!r} is not a loopback address; this test server binds 127.0.0.1 only.")
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="hub-server-")
        self.store = HubStore(Path(root if root is not None else self._tmp.name))
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.lfs_patterns, self.lfs_threshold = tuple(lfs_patterns), lfs_threshold
        self.uploads: dict[str, tuple[str, int]] = {}  # LFS upload ticket -> (sha256, size)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.hub = self
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = None

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def token_of(self, user: str) -> str:
        return next(token for token, name in self.tokens.items() if name == user)

    def client_env(self, token: str | None = None, hf_home: str | os.PathLike | None = None) -> dict[str, str]:
        """An environment for a client process: this endpoint, no Xet, online, ``token``."""
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
               "HF_DATASETS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}  # fmt: skip
        env.update(HF_ENDPOINT=self.url, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
                   HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false", NO_PROXY="127.0.0.1,localhost")  # fmt: skip
        if token is not None:
            env["HF_TOKEN"] = token
        if hf_home is not None:
            env["HF_HOME"] = str(hf_home)
        return env

    def upload_mode(self, path: str, size: int, tree: dict) -> str:
        """``lfs`` for files the branch's ``.gitattributes`` sends to LFS (as on the Hub: a
        repo is created with ``lfs_patterns`` there) or of ``lfs_threshold`` bytes and more."""
        patterns = self.lfs_patterns
        if ".gitattributes" in tree:
            lines = self.store.entry_path(tree[".gitattributes"]).read_text().splitlines()
            patterns = [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]
        name = path.rsplit("/", 1)[-1]  # git: a pattern without a slash matches the file name
        lfs = size >= self.lfs_threshold or any(fnmatch.fnmatch(path if "/" in p else name, p) for p in patterns)
        return "lfs" if lfs and size > 0 else "regular"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "w2v2-test-hub/0.1"

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------
    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip(), 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str((headers or {}).pop("Content-Length", len(body))))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _user(self, required: bool = False) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            if required:
                raise HubError(401, "You must be authenticated to access this resource (no token).")
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _repo(self, key: str, write: bool = False) -> dict:
        """The repo for ``key`` if the caller may read it (and write it, with ``write``)."""
        user = self._user(required=write)
        repo = self.hub.store.repos.get(key)
        if repo is None or (repo["private"] and repo["owner"] != user):
            # Like the Hub: a private repo is indistinguishable from a missing one.
            raise HubError(401 if user is None else 404, f"Repository {key.split(':')[1]} not found", "RepoNotFound")
        if write and repo["owner"] != user:
            raise HubError(403, f"You don't have the rights to write to {repo['id']} (user {user}).")
        return repo

    def _body(self) -> bytes:
        return self.body

    def _dispatch(self):
        # Read the whole body first: one left unread would corrupt the next request on a
        # kept-alive connection when this one is refused early.
        self.body = self._read_body()
        if not LOOPBACK.match(self.client_address[0]):
            raise HubError(403, f"client {self.client_address[0]} is not on loopback")
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise HubError(403, f"Host {host!r} is not a loopback name")
        split = urlsplit(self.path)
        parts, query = split.path.split("/")[1:], parse_qs(split.query)
        with self.hub.store.lock:
            if parts[0] == "api":
                return self._api(parts[1:], query)
            if parts[0] == "lfs-upload" and self.command == "PUT":
                return self._lfs_put(parts[1])
            repo_type = "dataset" if parts[0] == "datasets" else "model"
            parts = parts[1:] if parts[0] in ("datasets", "models") else parts
            if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:4] == ["info", "lfs"]:
                key = f"{repo_type}:{parts[0]}/{parts[1][:-4]}"
                return self._lfs_batch(key, parts[5]) if parts[4] == "objects" else None
            if len(parts) >= 4 and parts[2] == "resolve":
                return self._resolve(f"{repo_type}:{parts[0]}/{parts[1]}", unquote(parts[3]), unquote("/".join(parts[4:])))
        raise HubError(404, f"no route for {self.command} {split.path}")

    def _handle(self):
        try:
            self._dispatch()
        except Exception as err:  # a bug here must reach the client as a 500, not a dropped connection
            if not isinstance(err, HubError):
                err = HubError(500, f"server error: {type(err).__name__}: {err}")
            headers = {"X-Error-Message": err.message.splitlines()[0]}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json({"error": err.message}, err.status, headers)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

    # -- /api -------------------------------------------------------------------------
    def _api(self, parts: list[str], query: dict):
        method = self.command
        if parts == ["whoami-v2"]:
            user = self._user(required=True)
            return self._json({"type": "user", "id": user, "name": user, "fullname": user.title(), "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})  # fmt: skip
        if parts == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(self._body()))
        if parts[:1] == ["repos"] and method == "POST":
            return self._create_repo(json.loads(self._body())) if parts[1] == "create" else self._delete_repo()
        if len(parts) < 3 or parts[0] not in ("models", "datasets"):
            raise HubError(404, f"no API route /api/{'/'.join(parts)}")
        key = f"{parts[0][:-1]}:{parts[1]}/{parts[2]}"
        action, rest = (parts[3], [unquote(p) for p in parts[4:]]) if len(parts) > 3 else ("revision", ["main"])
        store = self.hub.store
        if action in ("revision", "tree", "paths-info", "commits") and method in ("GET", "POST"):
            repo = self._repo(key)
            revision = rest[0] if rest else "main"
            sha = store.resolve(repo, revision)
            if action == "revision":
                return self._json(self._info(repo, sha))
            if action == "commits":
                return self._json(self._history(repo, sha))
            tree = repo["commits"][sha]["tree"]
            if action == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._json(self._listing(tree, "/".join(rest[1:]), recursive))
            body = self._body()
            form = json.loads(body) if self.headers.get("Content-Type", "").startswith("application/json") else parse_qs(body.decode())
            return self._json(self._paths_info(tree, form.get("paths", [])))
        if action == "refs" and method == "GET":
            repo = self._repo(key)
            refs = lambda kind, prefix: [{"name": n, "ref": f"refs/{prefix}/{n}", "targetCommit": s}  # noqa: E731
                                         for n, s in sorted(repo[kind].items())]  # fmt: skip
            return self._json({"branches": refs("heads", "heads"), "tags": refs("tags", "tags"), "converts": []})
        repo = self._repo(key, write=True)
        if action == "preupload" and method == "POST":
            return self._preupload(repo, rest[0], json.loads(self._body()))
        if action == "commit" and method == "POST":
            if query.get("create_pr"):
                raise HubError(400, "pull requests are not supported by this test server")
            return self._commit(repo, rest[0], self._body())
        if action in ("branch", "tag"):
            return self._ref(repo, action, rest[0], json.loads(self._body() or b"{}"))
        raise HubError(404, f"no API route {method} /api/{'/'.join(parts)}")

    def _create_repo(self, payload: dict):
        user = self._user(required=True)
        namespace = payload.get("organization") or user
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a repo under the namespace {namespace}")
        repo_type, repo_id = payload.get("type") or "model", f"{namespace}/{payload['name']}"
        url = f"{self.hub.url}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
        key = f"{repo_type}:{repo_id}"
        if key in self.hub.store.repos:
            return self._json({"error": "You already created this repo", "url": url}, 409)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = {"type": repo_type, "id": repo_id, "owner": user, "private": private, "created": _now(),
                "heads": {}, "tags": {}, "commits": {}}  # fmt: skip
        attributes = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in self.hub.lfs_patterns).encode()
        tree = {".gitattributes": {"oid": self.hub.store.put_blob(attributes), "size": len(attributes), "lfs": None}}
        self.hub.store.repos[key] = repo
        self.hub.store.commit(repo, "main", tree, "initial commit", "", user)
        return self._json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self):
        user = self._user(required=True)
        payload = json.loads(self._body())
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        key = f"{payload.get('type') or 'model'}:{repo_id}"
        self._repo(key, write=True)
        del self.hub.store.repos[key]
        self.hub.store.save()
        return self._json({})

    def _validate_yaml(self, payload: dict):
        import yaml

        content = payload.get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as err:
            return self._json({"errors": [{"message": f"invalid YAML: {err}"}]}, 400)
        if metadata is not None and not isinstance(metadata, dict):
            return self._json({"errors": [{"message": "metadata must be a YAML mapping"}]}, 400)
        return self._json({"errors": [], "warnings": [] if metadata else [{"message": "empty or missing yaml metadata"}]})

    # -- reads ------------------------------------------------------------------------
    def _file(self, path: str, entry: dict) -> dict:
        info = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            info["lfs"] = {"oid": entry["lfs"], "size": entry["size"], "pointerSize": len(lfs_pointer(entry["lfs"], entry["size"]))}
        return info

    def _folder(self, tree: dict, path: str) -> dict:
        oids = "".join(e["oid"] for p, e in sorted(tree.items()) if p.startswith(path + "/"))
        return {"type": "directory", "oid": hashlib.sha1(oids.encode()).hexdigest(), "size": 0, "path": path}

    def _listing(self, tree: dict, path: str, recursive: bool) -> list[dict]:
        prefix = path + "/" if path else ""
        if path and path in tree:
            return [self._file(path, tree[path])]
        below = [p for p in sorted(tree) if p.startswith(prefix)]
        if path and not below:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        entries, folders = [], []
        for p in below:
            parents = p[len(prefix):].split("/")[:-1]
            for depth in range(1, len(parents) + 1 if recursive else min(1, len(parents)) + 1):
                folder = prefix + "/".join(parents[:depth])
                if folder not in folders:
                    folders.append(folder)
                    entries.append(self._folder(tree, folder))
            if recursive or not parents:
                entries.append(self._file(p, tree[p]))
        return entries

    def _paths_info(self, tree: dict, paths: list[str]) -> list[dict]:
        found = []
        for path in paths:
            if path in tree:
                found.append(self._file(path, tree[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in tree):
                found.append(self._folder(tree, path.rstrip("/")))
        return found

    def _info(self, repo: dict, sha: str) -> dict:
        commit = repo["commits"][sha]
        siblings = [{"rfilename": p, "size": e["size"], "blobId": e["oid"],
                     **({"lfs": self._file(p, e)["lfs"] | {"sha256": e["lfs"]}} if e["lfs"] else {})}
                    for p, e in sorted(commit["tree"].items())]  # fmt: skip
        return {"id": repo["id"], "_id": repo["id"], "author": repo["owner"], "sha": sha, "private": repo["private"],
                "gated": False, "disabled": False, "createdAt": repo["created"], "lastModified": commit["date"],
                "tags": [], "downloads": 0, "likes": 0, "siblings": siblings}  # fmt: skip

    def _history(self, repo: dict, sha: str | None) -> list[dict]:
        history = []
        while sha is not None:
            c = repo["commits"][sha]
            history.append({"id": sha, "title": c["title"], "message": c["message"], "date": c["date"],
                            "authors": [{"user": c["author"]}]})  # fmt: skip
            sha = c["parent"]
        return history

    def _resolve(self, key: str, revision: str, path: str):
        repo = self._repo(key)
        sha = self.hub.store.resolve(repo, revision)
        entry = repo["commits"][sha]["tree"].get(path)
        if entry is None:
            raise HubError(404, f"Entry {path} not found at {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "ETag": f'"{entry["lfs"] or entry["oid"]}"'}
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": f'"{entry["lfs"]}"', "X-Linked-Size": str(entry["size"])})
        size, status = entry["size"], 200
        start, end = 0, size - 1
        if (rng := re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))) and size:
            start = int(rng[1]) if rng[1] else max(size - int(rng[2] or 0), 0)
            end = min(int(rng[2]), size - 1) if rng[1] and rng[2] else end
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if self.command == "HEAD":
            return self._send(status, headers={**headers, "Content-Length": end - start + 1}, content_type="application/octet-stream")
        with open(self.hub.store.entry_path(entry), "rb") as f:
            f.seek(start)
            self._send(status, f.read(end - start + 1), headers, content_type="application/octet-stream")

    # -- writes -----------------------------------------------------------------------
    def _branch_head(self, repo: dict, branch: str) -> str:
        if branch not in repo["heads"]:
            raise HubError(404, f"Branch {branch} not found; create it first", "RevisionNotFound")
        return repo["heads"][branch]

    def _preupload(self, repo: dict, branch: str, payload: dict):
        tree = repo["commits"][self._branch_head(repo, branch)]["tree"]
        files = []
        for item in payload["files"]:
            mode = self.hub.upload_mode(item["path"], item["size"], tree)
            entry, oid = tree.get(item["path"]), None
            if entry is not None:  # the oid the client compares with its own to skip unchanged files
                if bool(entry["lfs"]) == (mode == "lfs"):  # sha256 for LFS files, git sha1 for regular ones
                    oid = entry["lfs"] or entry["oid"]
                else:  # stored the other way: hash the content as the client will
                    data = self.hub.store.entry_path(entry).read_bytes()
                    oid = hashlib.sha256(data).hexdigest() if mode == "lfs" else git_sha1(data)
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._json({"files": files, "commitOid": repo["heads"][branch]})

    def _lfs_batch(self, key: str, action: str):
        repo = self._repo(key, write=True)
        payload = json.loads(self._body())
        if action == "verify":
            if not self.hub.store.lfs_path(payload["oid"]).is_file():
                raise HubError(404, f"LFS object {payload['oid']} was not uploaded")
            return self._json({"message": "verified"})
        if payload.get("operation") != "upload":
            raise HubError(400, "only the upload operation is supported by the LFS batch API here")
        objects = []
        for obj in payload["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.hub.store.lfs_path(obj["oid"]).is_file():
                ticket = secrets.token_urlsafe(16)  # the upload PUT carries no Authorization header
                self.hub.uploads[ticket] = (obj["oid"], obj["size"])
                git = f"{self.hub.url}/{'datasets/' if repo['type'] == 'dataset' else ''}{repo['id']}.git"
                item["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{ticket}"},
                                   "verify": {"href": f"{git}/info/lfs/objects/verify"}}  # fmt: skip
            objects.append(item)
        return self._json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, ticket: str):
        if ticket not in self.hub.uploads:
            raise HubError(403, "unknown or used LFS upload ticket")
        sha256, size = self.hub.uploads.pop(ticket)
        data = self._body()
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise HubError(400, f"LFS upload does not match oid {sha256} and size {size}")
        self.hub.store.lfs_path(sha256).write_bytes(data)
        return self._send(200)

    def _commit(self, repo: dict, branch: str, body: bytes):
        user = self._user(required=True)
        head = self._branch_head(repo, branch)
        tree = dict(repo["commits"][head]["tree"])
        header = {}
        for line in filter(None, body.splitlines()):
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
                if value.get("parentCommit") not in (None, head):
                    raise HubError(412, f"parentCommit {value['parentCommit']} is not the head of {branch} ({head})")
            elif item["key"] == "file":
                data = base64.b64decode(value["content"])
                tree[value["path"]] = {"oid": self.hub.store.put_blob(data), "size": len(data), "lfs": None}
            elif item["key"] == "lfsFile":
                path = self.hub.store.lfs_path(value["oid"])
                if not path.is_file():
                    raise HubError(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                size = path.stat().st_size
                tree[value["path"]] = {"oid": git_sha1(lfs_pointer(value["oid"], size)), "size": size, "lfs": value["oid"]}
            elif item["key"] == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif item["key"] == "deletedFolder":
                tree = {p: e for p, e in tree.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise HubError(400, f"unknown commit operation {item['key']!r}")
        sha = self.hub.store.commit(repo, branch, tree, header.get("summary", ""), header.get("description", ""), user)
        prefix = "datasets/" if repo["type"] == "dataset" else ""
        return self._json({"success": True, "commitOid": sha, "commitUrl": f"{self.hub.url}/{prefix}{repo['id']}/commit/{sha}",
                           "hookOutput": "", "pullRequestUrl": None})  # fmt: skip

    def _ref(self, repo: dict, kind: str, name: str, payload: dict):
        refs = repo["heads" if kind == "branch" else "tags"]
        if self.command == "DELETE":
            if refs.pop(name, None) is None:
                raise HubError(404, f"{kind} {name} not found", "RevisionNotFound")
            self.hub.store.save()
            return self._json({})
        if kind == "branch":
            target = self.hub.store.resolve(repo, payload.get("startingPoint") or "main")
        else:  # POST .../tag/{revision} {"tag": name}
            target, name = self.hub.store.resolve(repo, name), payload["tag"]
        if name in repo["heads"] or name in repo["tags"]:
            raise HubError(409, f"Reference {name} already exists")
        refs[name] = target
        self.hub.store.save()
        return self._json({"name": name, "targetCommit": target})


# -- pytest ---------------------------------------------------------------------------
try:
    import pytest
except ImportError:  # running as a script without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def hub_server():
        """One loopback Hub server for the whole test session (``.url``, ``.client_env(token)``)."""
        with HubServer() as server:
            yield server


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--root", default=None, help="storage folder (default: a temporary one)")
    parser.add_argument("--lfs_pattern", action="append", default=None, help="paths uploaded through LFS (repeatable)")
    args = parser.parse_args(argv)
    server = HubServer(args.root, port=args.port, lfs_patterns=args.lfs_pattern or LFS_PATTERNS)
    print(server.url, flush=True)
    print("tokens: " + ", ".join(f"{user}={token}" for token, user in server.tokens.items()), flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
