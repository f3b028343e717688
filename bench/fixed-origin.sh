# Sourced by the benchmarks: the fixed answers nginx serves as a model server.
# Sets $completion (one chat completion) and writes $1/sse.txt (a stream of $2 token events,
# default 200, then usage and [DONE]).
completion='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}'
write_fixed_sse() {
  local dir="$1" events="${2:-200}" sse="" i
  for i in $(seq "$events"); do
    sse+='data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,"delta":{"content":"tok'$i' "},"finish_reason":null}]}\n\n'
  done
  sse+='data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":'$events',"total_tokens":'$((events + 12))'}}\n\ndata: [DONE]\n\n'
  printf "$sse" > "$dir/sse.txt"
}

# Starts nginx in $1 on 127.0.0.1:$2 answering every chat completion with $completion (and
# /health); its pid file is $1/nginx.pid.
start_fixed_nginx() {
  local dir="$1" port="$2"
  cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location = /health { return 200 'ok'; }
    location /v1/chat/completions { default_type application/json; return 200 '$completion'; }
  }
}
NGINX
  nginx -c "$dir/nginx.conf" -p "$dir"
}
