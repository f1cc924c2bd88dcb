def import_model(path):
    raise NotImplementedError


def import_to_gluon(path, ctx=None):
    raise NotImplementedError
