"""The operator dashboard (Streamlit): ``streamlit run dashboard/app.py``."""
