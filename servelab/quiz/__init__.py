"""Quizzes: question banks, widgets, grading and the gradebook.

    from servelab import quiz
    quiz.show("03-load")       # widgets in JupyterLab, text elsewhere
    quiz.submit("03-load")     # grade, record, print the score table
"""

from servelab.quiz.submission import show, submit

__all__ = ["show", "submit"]
