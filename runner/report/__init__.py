"""Listening to a build: the static HTML report and the review app.

    collect.py         a build's takes, outcomes and decisions, read-only
    audio.py           waveforms and loudness of a file
    page.py, static.py the report's HTML, style and script; write.py writes the files
    review_session.py  what `runner review` serves; review_app.py its web server;
                       review_page.py its page
"""
