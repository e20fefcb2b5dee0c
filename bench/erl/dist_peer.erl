%% The Erlang side of bench/dist.cpp: a peer node's `echo` gen_server and `sink` process, and
%% the erl-to-erl client measured beside Grove's in the same run.
-module(dist_peer).
-behaviour(gen_server).
-export([start/0, client/3, init/1, handle_call/3, handle_cast/2, handle_info/2]).

%% On the peer: `echo` answers every call with its request; `sink` counts what it receives
%% and answers {count, From} with {count, N}.
start() ->
    {ok, _} = gen_server:start({local, echo}, ?MODULE, [], []),
    register(sink, spawn(fun() -> sink(0) end)),
    ok.

init([]) -> {ok, []}.
handle_call(X, _From, S) -> {reply, X, S}.
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

sink(N) ->
    receive
        {count, From} -> From ! {count, N}, sink(0);
        _ -> sink(N + 1)
    end.

%% On the client: Calls sequential gen_server calls to {echo, Node}, then Msgs one-way sends to
%% {sink, Node}; prints one JSON line.
client(Node, Calls, Msgs) ->
    pong = net_adm:ping(Node),
    [gen_server:call({echo, Node}, I) || I <- lists:seq(1, 1000)],  % warm-up
    T0 = erlang:monotonic_time(nanosecond),
    call_loop({echo, Node}, Calls),
    T1 = erlang:monotonic_time(nanosecond),
    Sink = {sink, Node},
    {sink, Node} ! {count, self()},
    receive {count, _} -> ok end,
    T2 = erlang:monotonic_time(nanosecond),
    send_loop(Sink, Msgs),
    Sink ! {count, self()},
    Got = receive {count, C} -> C end,
    T3 = erlang:monotonic_time(nanosecond),
    io:format("{\"call_rtt_us\":~.3f,\"msgs_per_s\":~.1f,\"received\":~p}~n",
              [(T1 - T0) / 1000 / Calls, Msgs / ((T3 - T2) / 1.0e9), Got]).

call_loop(_, 0) -> ok;
call_loop(S, K) -> K = gen_server:call(S, K), call_loop(S, K - 1).

send_loop(_, 0) -> ok;
send_loop(S, K) -> S ! {msg, K}, send_loop(S, K - 1).
