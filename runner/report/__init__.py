"""Listening to a build: the static HTML report and the review app.

    collect.py         a build's takes, outcomes and decisions, read-only
    audio.py           waveforms and loudness of a file
    page.py, static.py the report's cards (markupsafe Markup), style and script;
                       write.py writes the files
    markup.py          renders templates/ (report.html, review.html): Jinja2, autoescape
    review_session.py  what `runner review` serves; review_app.py its web server;
                       review_page.py its page's style and script
"""
