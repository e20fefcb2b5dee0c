%% A gen_server on the Erlang side of the distribution tests (tests/dist/remote_test.cpp):
%% what Grove calls, casts to, monitors and links to. Compiled by the test's erl at run time.
-module(grove_probe).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() -> gen_server:start({local, probe}, ?MODULE, [], []).

init([]) -> {ok, nothing_cast}.

handle_call({echo, X}, _From, S) -> {reply, X, S};
handle_call({sleep, Ms, X}, _From, S) -> timer:sleep(Ms), {reply, X, S};
handle_call({stop, Reason}, _From, S) -> {stop, Reason, S};  % the caller's monitor gets Reason
handle_call(last_cast, _From, S) -> {reply, S, S}.

handle_cast(X, _) -> {noreply, X}.

handle_info(_, S) -> {noreply, S}.
