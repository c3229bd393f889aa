"""edgerun serve: an OpenAI-compatible HTTP server (Starlette + uvicorn, the optional extra edgerun[server]).

main.py plans the slots and runs uvicorn; app.py holds the routes; slots.py the sessions and their queue;
plan.py the memory plan of N slots; generation.py one request on a slot; params.py request validation;
errors.py OpenAI's error body; sse.py the event stream; metrics.py GET /metrics; page.html the chat page.
"""
