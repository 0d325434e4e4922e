"""The server client against a scripted loopback server: streaming, usage, stop, and every
network fault a person can meet, each with a clear message and the partial answer kept."""

from __future__ import annotations

import socket
import threading

import pytest

from engine.remote import RemoteBackend, RemoteError
from tests.fake_openai_server import (
    FakeOpenAIServer,
    chunk,
    drop_after,
    endless,
    error,
    hang,
    raw,
    reply,
    stream,
)

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def ask(backend, **options) -> str:
    return "".join(backend.stream_chat(HELLO, **options))


def fault(backend, **options) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        ask(backend, **options)
    return caught.value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- streaming ----------------------------------------------------------------------------


def test_streams_the_answer_and_sends_every_setting(server):
    usage = {"prompt_tokens": 12, "completion_tokens": 3}
    server.script(CHAT, stream(["Hel", "lo", "!"], usage=usage))
    backend = RemoteBackend(server.url, "gemma3:27b", api_key="sk-test")
    pieces = list(backend.stream_chat(HELLO, temperature=0.7, top_p=0.9, top_k=40, min_p=0.05,
                                      max_tokens=100, seed=7, stop=["\n\n"]))
    assert pieces == ["Hel", "lo", "!"]
    sent = server.requests[0]
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["json"] == {
        "model": "gemma3:27b", "messages": HELLO, "stream": True,
        "stream_options": {"include_usage": True}, "temperature": 0.7, "top_p": 0.9,
        "top_k": 40, "min_p": 0.05, "max_tokens": 100, "seed": 7, "stop": ["\n\n"]}
    assert tuple(backend.last_usage) == (12, 3, "server")
    stats = backend.last_stats
    assert stats.stop_reason == "stop_token" and stats.decode_tokens == 3
    assert stats.as_dict()["model"] == "gemma3:27b"


def test_without_server_usage_our_tokenizer_counts_the_answer(server):
    server.script(CHAT, stream(["one two ", "three"], finish="length"))
    backend = RemoteBackend(server.url, "gemma", count_tokens=lambda text: len(text.split()))
    assert ask(backend) == "one two three"
    assert tuple(backend.last_usage) == (None, 3, "tokenizer")
    assert backend.last_stats.stop_reason == "max_tokens"
    assert "Authorization" not in server.requests[0]["headers"]
    unset = server.requests[0]["json"]
    assert not {"max_tokens", "seed", "stop"} & unset.keys()


def test_a_server_that_ignores_stream_and_sends_the_whole_answer(server):
    server.script(CHAT, reply({"choices": [{"message": {"content": "All at once"},
                                            "finish_reason": "stop"}]}))
    backend = RemoteBackend(server.url, "gemma")
    assert ask(backend) == "All at once"
    assert tuple(backend.last_usage) == (None, 1, "chunks")


def test_an_answer_that_ends_without_done_after_its_finish_reason_is_complete(server):
    server.script(CHAT, stream(["Fine"], done=False))
    assert ask(RemoteBackend(server.url, "gemma")) == "Fine"


# -- stop ---------------------------------------------------------------------------------


def test_stop_mid_answer_ends_the_stream_quietly_and_hangs_up(server):
    server.script(CHAT, endless("la "))
    backend, cancel, got = RemoteBackend(server.url, "gemma"), threading.Event(), []
    for piece in backend.stream_chat(HELLO, cancel=cancel):
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert got == ["la "] * 3
    assert backend.last_stats.stop_reason == "cancelled"
    assert server.disconnected.wait(10)


def test_stop_while_the_server_is_silent_does_not_wait_for_the_timeout(server):
    # The server reads the prompt (sends nothing) for 60 s; the read timeout is 60 s too, so
    # ending without an error proves the blocked read was interrupted.
    server.script(CHAT, hang([], 60, headers=False))
    backend, cancel = RemoteBackend(server.url, "gemma", timeout=60), threading.Event()
    threading.Thread(target=lambda: server.request_seen.wait(10) and cancel.set()).start()
    assert ask(backend, cancel=cancel) == ""
    assert backend.last_stats.stop_reason == "cancelled"
    assert server.disconnected.wait(10)


def test_closing_the_stream_early_hangs_up(server):
    server.script(CHAT, endless())
    answer = RemoteBackend(server.url, "gemma").stream_chat(HELLO)
    next(answer)
    answer.close()
    assert server.disconnected.wait(10)


# -- faults -------------------------------------------------------------------------------


def test_a_server_that_dies_mid_answer_keeps_the_partial_answer(server):
    server.script(CHAT, drop_after(["The answer ", "is"]))
    backend = RemoteBackend(server.url, "gemma")
    exc = fault(backend)
    assert exc.partial_text == "The answer is"
    assert exc.retryable and "lost in the middle of the answer" in exc.message
    assert backend.last_stats.stop_reason == "error"


def test_a_stream_cut_before_its_finish_reason_is_an_error(server):
    server.script(CHAT, stream(["Half"], finish=None, done=False))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert exc.partial_text == "Half" and exc.retryable


def test_http_500_shows_the_servers_own_message(server):
    body = {"error": {"message": "CUDA out of memory", "type": "server_error"}}
    server.script(CHAT, error(500, body))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert exc.message == ("The server answered HTTP 500 Internal Server Error: "
                           "CUDA out of memory")
    assert exc.status == 500 and exc.retryable and exc.partial_text == ""


@pytest.mark.parametrize("body, shown", [
    ({"error": "model 'gemma9' not found"}, "model 'gemma9' not found"),  # Ollama
    ({"object": "error", "message": "The model `x` does not exist."}, "The model `x` does"),
    (b"<html>Not Found</html>", "<html>Not Found</html>"),
])
def test_http_404_names_the_problem_and_what_to_check(server, body, shown):
    server.script(CHAT, error(404, body))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert shown in exc.message and "model name" in exc.message and not exc.retryable


def test_http_401_asks_for_the_api_key(server):
    server.script(CHAT, error(401, {"detail": "Invalid API key"}))
    exc = fault(RemoteBackend(server.url, "gemma", api_key="wrong"))
    assert "Invalid API key" in exc.message and "Check the API key" in exc.message
    assert not exc.retryable


def test_rate_limit_says_when_to_try_again(server):
    server.script(CHAT, error(429, {"error": {"message": "Too many requests"}},
                              {"Retry-After": "7"}))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert exc.retryable and exc.retry_after == 7.0 and exc.status == 429
    assert "Too many requests" in exc.message and "try again in 7 s" in exc.message


def test_a_server_that_stops_sending_times_out_with_the_partial_answer(server):
    server.script(CHAT, hang(["Thinking"], 30))
    exc = fault(RemoteBackend(server.url, "gemma", timeout=1))  # room for a busy machine
    assert exc.partial_text == "Thinking" and exc.retryable
    assert "stopped sending for 1 s" in exc.message


def test_a_server_that_never_answers_times_out(server):
    server.script(CHAT, hang([], 30, headers=False))
    exc = fault(RemoteBackend(server.url, "gemma", timeout=0.3))
    assert "did not answer within 0.3 s" in exc.message and exc.partial_text == ""


def test_malformed_events_are_named_and_the_partial_answer_kept(server):
    server.script(CHAT, raw(chunk("Good ") + b"data: {not json\n\n"))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert exc.partial_text == "Good " and exc.malformed and not exc.retryable
    assert "not JSON: '{not json'" in exc.message


def test_an_error_event_mid_stream_shows_the_servers_message(server):
    event = b'data: {"error": {"message": "context size exceeded", "code": 400}}\n\n'
    server.script(CHAT, raw(chunk("So far") + event))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert exc.partial_text == "So far" and "context size exceeded" in exc.message


def test_a_web_page_instead_of_the_api_points_at_the_address(server):
    server.script(CHAT, raw(b"<html>welcome</html>", content_type="text/html"))
    exc = fault(RemoteBackend(server.url, "gemma"))
    assert "text/html" in exc.message and "/v1" in exc.message


def test_connection_refused():
    exc = fault(RemoteBackend(f"http://127.0.0.1:{free_port()}/v1", "gemma"))
    assert "connection refused" in exc.message and exc.retryable and exc.partial_text == ""


def test_unknown_host():
    exc = fault(RemoteBackend("http://no-such-host.invalid:8000/v1", "gemma"))
    assert "Cannot find the server 'no-such-host.invalid'" in exc.message


def test_connect_timeout():
    # A listener whose accept queue is full: Linux drops further connection attempts, as a
    # firewall or a sleeping host would.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        waiting = [socket.socket() for _ in range(3)]
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(listener.getsockname())
        port = listener.getsockname()[1]
        exc = fault(RemoteBackend(f"http://127.0.0.1:{port}", "gemma", connect_timeout=0.3))
        for sock in waiting:
            sock.close()
    assert "did not accept a connection within 0.3 s" in exc.message and exc.retryable


# -- what the server knows ----------------------------------------------------------------


def test_models_and_vllm_context_length(server):
    server.script("/v1/models", reply({"object": "list", "data": [
        {"id": "google/gemma-3-27b-it", "max_model_len": 131072},
        {"id": "other", "max_model_len": 4096}]}))
    backend = RemoteBackend(server.url, "google/gemma-3-27b-it")
    assert backend.list_models() == ["google/gemma-3-27b-it", "other"]
    assert backend.context_length() == 131072
    assert backend.context_length("other") == 4096


def test_llama_cpp_context_length_from_props(server):
    server.script("/v1/models", reply({"data": [{"id": "gemma.gguf"}]}))
    server.script("/props", reply({"default_generation_settings": {"n_ctx": 8192}}))
    assert RemoteBackend(server.url, "gemma.gguf").context_length() == 8192


def test_ollama_context_length_from_the_loaded_model_or_the_modelfile(server):
    server.script("/api/ps", reply({"models": [{"name": "gemma3:27b", "context_length": 32768}]}),
                  reply({"models": []}))
    server.script("/api/show", reply({"parameters": "stop <end_of_turn>\nnum_ctx 16384",
                                      "model_info": {"gemma3.context_length": 131072}}))
    backend = RemoteBackend(server.url, "gemma3:27b")
    assert backend.context_length() == 32768
    assert backend.context_length() == 16384
    assert server.requests[-1]["json"] == {"model": "gemma3:27b"}


def test_context_length_unknown_is_none_but_an_unreachable_server_is_an_error(server):
    server.script("/v1/models", reply({"data": [{"id": "gemma"}]}))
    server.script("/api/show", reply({"parameters": "temperature 1"}))
    assert RemoteBackend(server.url, "gemma").context_length() is None
    with pytest.raises(RemoteError, match="connection refused"):
        RemoteBackend(f"http://127.0.0.1:{free_port()}", "gemma").context_length()


def test_a_model_list_that_is_not_json_is_named(server):
    server.script("/v1/models", error(200, b"<html></html>"))
    with pytest.raises(RemoteError, match="did not answer with JSON"):
        RemoteBackend(server.url, "gemma").list_models()


def test_a_final_answer_in_the_messages_is_continued(server):
    server.script(CHAT, stream([" on."]))
    messages = [*HELLO, {"role": "assistant", "content": "Hello and so"}]
    assert "".join(RemoteBackend(server.url, "gemma").stream_chat(messages)) == " on."
    sent = server.requests[0]["json"]
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
