"""End-to-end tests of krust's API server with the official Kubernetes Python client.

Run against a live `krust server` whose kubeconfig is named by $KUBECONFIG
(crates/krust/tests/python_client.rs starts one and runs this suite). Each test
works in its own fresh namespace, using only the typed APIs (CoreV1Api,
AppsV1Api) and kubernetes.watch, and checks what the server sends back.
"""

import json
import os
import threading
import time
import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="session", autouse=True)
def kubeconfig():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])


@pytest.fixture
def core():
    return client.CoreV1Api()


@pytest.fixture
def apps():
    return client.AppsV1Api()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ns(core):
    """A fresh namespace for one test; deleted afterwards."""
    name = unique("pyt")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException:
        pass


def config_map(name, data=None, labels=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        data=data,
    )


def api_error(excinfo):
    """The HTTP status and the decoded metav1.Status body of an ApiException."""
    err = excinfo.value
    body = json.loads(err.body)
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == err.status, body
    return err.status, body


# --- CRUD -------------------------------------------------------------------


def test_config_map_create_read_replace_patch_delete(core, ns):
    created = core.create_namespaced_config_map(
        ns, config_map("settings", {"a": "1", "b": "2"}, {"app": "demo"})
    )
    assert isinstance(created, client.V1ConfigMap)
    assert created.metadata.name == "settings"
    assert created.metadata.namespace == ns
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    assert created.data == {"a": "1", "b": "2"}

    read = core.read_namespaced_config_map("settings", ns)
    assert read.metadata.uid == created.metadata.uid
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.metadata.labels == {"app": "demo"}
    assert read.data == {"a": "1", "b": "2"}

    read.data = {"a": "10", "c": "3"}
    replaced = core.replace_namespaced_config_map("settings", ns, read)
    assert replaced.data == {"a": "10", "c": "3"}
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.resource_version != created.metadata.resource_version

    # A dict body is sent as a strategic merge patch: maps merge.
    patched = core.patch_namespaced_config_map(
        "settings", ns, {"metadata": {"labels": {"tier": "x"}}, "data": {"d": "4"}}
    )
    assert patched.data == {"a": "10", "c": "3", "d": "4"}
    assert patched.metadata.labels == {"app": "demo", "tier": "x"}
    assert patched.metadata.resource_version != replaced.metadata.resource_version

    # A JSON merge patch: null deletes a key.
    merged = core.patch_namespaced_config_map(
        "settings",
        ns,
        {"data": {"a": None, "c": "30"}},
        _content_type="application/merge-patch+json",
    )
    assert merged.data == {"c": "30", "d": "4"}

    # A JSON patch (a list of operations).
    json_patched = core.patch_namespaced_config_map(
        "settings",
        ns,
        [
            {"op": "test", "path": "/data/c", "value": "30"},
            {"op": "remove", "path": "/data/d"},
            {"op": "add", "path": "/data/e", "value": "5"},
        ],
    )
    assert json_patched.data == {"c": "30", "e": "5"}
    assert core.read_namespaced_config_map("settings", ns).data == {"c": "30", "e": "5"}

    core.delete_namespaced_config_map("settings", ns)
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_config_map("settings", ns)
    assert excinfo.value.status == 404
    assert all(
        item.metadata.name != "settings"
        for item in core.list_namespaced_config_map(ns).items
    )


def deployment(name, replicas=2):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="app",
                            image="nginx:1.14.2",
                            ports=[client.V1ContainerPort(container_port=80)],
                            env=[client.V1EnvVar(name="A", value="1")],
                        ),
                        client.V1Container(name="sidecar", image="busybox:1.36"),
                    ]
                ),
            ),
        ),
    )


def test_deployment_create_read_strategic_merge_patch_delete(apps, ns):
    created = apps.create_namespaced_deployment(ns, deployment("web"))
    assert isinstance(created, client.V1Deployment)
    assert created.metadata.generation == 1
    assert created.spec.replicas == 2

    read = apps.read_namespaced_deployment("web", ns)
    assert read.metadata.uid == created.metadata.uid
    assert read.spec.selector.match_labels == {"app": "web"}
    # Server-side defaults.
    assert read.spec.strategy.type == "RollingUpdate"
    assert read.spec.revision_history_limit == 10
    app = read.spec.template.spec.containers[0]
    assert app.image_pull_policy == "IfNotPresent"
    assert app.termination_message_path == "/dev/termination-log"
    assert read.spec.template.spec.restart_policy == "Always"

    # Strategic merge: containers merge by name, env merges by name, the
    # untouched sidecar and ports stay.
    patch = {
        "metadata": {"labels": {"tier": "frontend"}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "env": [{"name": "B", "value": "2"}],
                        }
                    ]
                }
            },
        },
    }
    patched = apps.patch_namespaced_deployment("web", ns, patch)
    assert patched.spec.replicas == 3
    assert patched.metadata.labels == {"app": "web", "tier": "frontend"}
    assert patched.metadata.generation == 2
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert sorted(containers) == ["app", "sidecar"]
    assert containers["app"].image == "nginx:1.25"
    assert containers["app"].ports[0].container_port == 80
    assert sorted((e.name, e.value) for e in containers["app"].env) == [
        ("A", "1"),
        ("B", "2"),
    ]
    assert containers["sidecar"].image == "busybox:1.36"
    again = apps.read_namespaced_deployment("web", ns)
    assert again.metadata.resource_version == patched.metadata.resource_version
    assert {c.name: c.image for c in again.spec.template.spec.containers} == {
        "app": "nginx:1.25",
        "sidecar": "busybox:1.36",
    }

    apps.delete_namespaced_deployment("web", ns)
    with pytest.raises(ApiException) as excinfo:
        apps.read_namespaced_deployment("web", ns)
    assert excinfo.value.status == 404
    assert apps.list_namespaced_deployment(ns).items == []


def test_deleting_a_config_map_answers_with_a_success_status(core, ns):
    created = core.create_namespaced_config_map(ns, config_map("gone", {"a": "1"}))
    answer = core.delete_namespaced_config_map("gone", ns)
    assert answer["kind"] == "Status", answer
    assert answer["status"] == "Success"
    assert answer["details"] == {
        "name": "gone",
        "kind": "configmaps",
        "uid": created.metadata.uid,
    }


def test_deleting_a_deployment_answers_with_a_success_status(apps, ns):
    created = apps.create_namespaced_deployment(ns, deployment("gone"))
    answer = apps.delete_namespaced_deployment("gone", ns)
    assert answer["kind"] == "Status", answer
    assert answer["status"] == "Success"
    assert answer["details"] == {
        "name": "gone",
        "group": "apps",
        "kind": "deployments",
        "uid": created.metadata.uid,
    }


def test_namespace_create_list_delete_leaves_it_terminating(core):
    name = unique("pyt-ns")
    created = core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"suite": name}))
    )
    assert created.metadata.name == name
    assert created.status.phase == "Active"

    names = [n.metadata.name for n in core.list_namespace().items]
    assert name in names
    assert "default" in names
    selected = core.list_namespace(label_selector=f"suite={name}").items
    assert [n.metadata.name for n in selected] == [name]

    core.delete_namespace(name)
    # Terminating until the namespace controller has emptied it, then gone.
    terminating = core.read_namespace(name)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.status.phase == "Terminating"
    listed = core.list_namespace(field_selector=f"metadata.name={name}").items
    assert [n.status.phase for n in listed] == ["Terminating"]
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            core.read_namespace(name)
        except ApiException as error:
            assert error.status == 404
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"namespace {name} still exists after 60 s")


# --- Lists: selectors and pagination -----------------------------------------


def test_list_with_label_and_field_selectors(core, ns):
    core.create_namespaced_config_map(ns, config_map("cm-a", labels={"app": "web", "tier": "frontend"}))
    core.create_namespaced_config_map(ns, config_map("cm-b", labels={"app": "web", "tier": "backend"}))
    core.create_namespaced_config_map(ns, config_map("cm-c", labels={"app": "db"}))

    def names(**kwargs):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(ns, **kwargs).items)

    assert names(label_selector="app=web") == ["cm-a", "cm-b"]
    assert names(label_selector="app==web,tier!=backend") == ["cm-a"]
    assert names(label_selector="tier in (frontend,backend)") == ["cm-a", "cm-b"]
    assert names(label_selector="app,!tier") == ["cm-c"]
    assert names(label_selector="app notin (web)") == ["cm-c"]
    assert names(label_selector="app=nothing") == []
    assert names(field_selector="metadata.name=cm-b") == ["cm-b"]
    assert names(field_selector="metadata.name!=cm-b", label_selector="app") == ["cm-a", "cm-c"]
    assert names(field_selector=f"metadata.namespace={ns},metadata.name=cm-c") == ["cm-c"]

    everywhere = core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={ns}", label_selector="app=web"
    ).items
    assert sorted((i.metadata.namespace, i.metadata.name) for i in everywhere) == [
        (ns, "cm-a"),
        (ns, "cm-b"),
    ]

    with pytest.raises(ApiException) as excinfo:
        core.list_namespaced_config_map(ns, field_selector="data.nonsense=1")
    status, body = api_error(excinfo)
    assert status == 400 and body["reason"] == "BadRequest"


def test_pagination_with_limit_and_continue(core, ns):
    made = {f"page-{i:02d}" for i in range(25)}
    for name in made:
        core.create_namespaced_config_map(ns, config_map(name, {"i": name}))
    total = len(core.list_namespaced_config_map(ns).items)
    assert total >= 25

    seen = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=10, _continue=token)
        pages += 1
        assert len(page.items) <= 10
        seen.extend(i.metadata.name for i in page.items)
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count in (None, 0)
            break
        assert len(page.items) == 10
        assert page.metadata.remaining_item_count == total - len(seen)
        assert pages < 10, "pagination does not terminate"

    assert len(seen) == len(set(seen)), f"duplicates: {sorted(seen)}"
    assert made <= set(seen)
    assert len(seen) == total
    assert pages == -(-total // 10)


def test_pagination_serves_a_consistent_snapshot(core, ns):
    for i in range(6):
        core.create_namespaced_config_map(ns, config_map(f"snap-{i}"))
    first = core.list_namespaced_config_map(ns, limit=3)
    assert first.metadata._continue
    # Changes after the first page do not show in later pages.
    core.create_namespaced_config_map(ns, config_map("snap-9"))
    rest = core.list_namespaced_config_map(ns, limit=100, _continue=first.metadata._continue)
    assert rest.metadata.resource_version == first.metadata.resource_version
    names = [i.metadata.name for i in first.items + rest.items]
    assert "snap-9" not in names
    assert len(names) == len(set(names))
    assert {f"snap-{i}" for i in range(6)} <= set(names)


# --- Watch --------------------------------------------------------------------


def test_watch_sees_added_then_modified_then_deleted(core, ns):
    core.create_namespaced_config_map(ns, config_map("bystander", {"x": "0"}))
    core.create_namespaced_config_map(ns, config_map("target", {"v": "1"}))

    events = []
    added = set()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=20):
        obj = event["object"]
        assert isinstance(obj, client.V1ConfigMap), event
        if event["type"] == "ADDED":
            added.add(obj.metadata.name)
        if obj.metadata.name != "target":
            continue
        events.append((event["type"], dict(obj.data or {}), obj.metadata.resource_version))
        if event["type"] == "ADDED":
            patched = core.patch_namespaced_config_map("target", ns, {"data": {"v": "2"}})
        elif event["type"] == "MODIFIED":
            core.delete_namespaced_config_map("target", ns)
        elif event["type"] == "DELETED":
            w.stop()

    assert {"bystander", "target"} <= added
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"], events
    assert events[0][1] == {"v": "1"}
    assert events[1][1] == {"v": "2"}
    assert events[1][2] == patched.metadata.resource_version
    assert events[2][1] == {"v": "2"}


def test_watch_from_a_list_resource_version_with_a_label_selector(core, ns):
    """Only changes after the list, and only matching objects, arrive."""
    core.create_namespaced_config_map(ns, config_map("old", labels={"w": "yes"}))
    listed = core.list_namespaced_config_map(ns, label_selector="w=yes")
    assert [i.metadata.name for i in listed.items] == ["old"]

    def later():
        core.create_namespaced_config_map(ns, config_map("ignored", labels={"w": "no"}))
        core.create_namespaced_config_map(ns, config_map("new", labels={"w": "yes"}))

    timer = threading.Timer(1.0, later)
    timer.start()
    seen = []
    try:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            ns,
            label_selector="w=yes",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=20,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            w.stop()
    finally:
        timer.join()
    assert seen == [("ADDED", "new")]


# --- Errors -------------------------------------------------------------------


def test_reading_a_missing_object_is_404_not_found(core, ns):
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_config_map("does-not-exist", ns)
    status, body = api_error(excinfo)
    assert status == 404
    assert body["reason"] == "NotFound"
    assert body["details"]["name"] == "does-not-exist"
    assert body["details"]["kind"] == "configmaps"
    assert body["message"] == 'configmaps "does-not-exist" not found'


def test_creating_a_duplicate_is_409_already_exists(core, ns):
    core.create_namespaced_config_map(ns, config_map("dup"))
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map(ns, config_map("dup"))
    status, body = api_error(excinfo)
    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["details"]["name"] == "dup"
    assert body["message"] == 'configmaps "dup" already exists'


def test_replacing_with_a_stale_resource_version_is_409_conflict(core, ns):
    stale = core.create_namespaced_config_map(ns, config_map("cas", {"v": "1"}))
    fresh = core.read_namespaced_config_map("cas", ns)
    fresh.data = {"v": "2"}
    core.replace_namespaced_config_map("cas", ns, fresh)

    stale.data = {"v": "3"}
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("cas", ns, stale)
    status, body = api_error(excinfo)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cas", ns).data == {"v": "2"}


def test_an_invalid_name_is_422_invalid(core, ns):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map(ns, config_map("Not_A_Valid_Name"))
    status, body = api_error(excinfo)
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["name"] == "Not_A_Valid_Name"
    assert any(c.get("field") == "metadata.name" for c in body["details"].get("causes", []))
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_config_map("Not_A_Valid_Name", ns)
    assert excinfo.value.status == 404
